"""GET /v1/audit/head and /v1/audit/keys, and a write on a broken chain (issue 11)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ledger.heads import KeyRing, SignedHead, create_signing_key, load_public_pem
from ledger.store.engine import create_ledger_engine
from tests.api.conftest import Api, line, seed_consignee, seed_operator


def test_head_and_keys_are_served_and_a_broken_chain_refuses_writes_with_503(
    db_url: str, start_api: Callable[..., Api], tmp_path: Path
) -> None:
    key = tmp_path / "signing.pem"
    create_signing_key(key)
    api = start_api(db_url, signing_key_path=str(key))
    assert api.get("/v1/audit/head").status_code == 404  # nothing signed yet
    seed_operator(api, "op1", hq="SG")
    seed_consignee(api, "sg-lab", "SG")
    for n in range(3):
        assert api.reserve([line("SG", "sg-lab")], key=f"k{n}").status_code == 201
    head = api.get("/v1/audit/head", role="operator")
    assert head.status_code == 200, head.text
    doc = head.json()
    assert set(doc) == {"seq", "hash", "root", "at", "key_id", "signature"}
    assert doc["seq"] == 3
    keys = api.get("/v1/audit/keys", role="auditor").json()
    assert keys["current_key_id"] == doc["key_id"]
    ring = KeyRing()
    for item in keys["keys"]:
        assert ring.add(load_public_pem(item["public_key"])) == item["key_id"]
    assert ring.check(SignedHead.from_doc(doc)) is None  # verifiable from what is served
    assert api.get("/v1/audit/verify", role="auditor").json()["ok"] is True

    # A forged entry appended past the head (triggers do not stop an INSERT).
    engine = create_ledger_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO entry SELECT * FROM entry WHERE seq = 3".replace(
                    "SELECT *", "SELECT 4, kind, reservation_id, line_no, country, operator_id, "
                    "consignee_id, path, tpp, draws, effective_at, recorded_at, actor, "
                    "idempotency_key, rule_set, rule_set_version, note, encoding, hash, hash")
                .replace("INSERT INTO entry", "INSERT INTO entry (seq, kind, reservation_id, "
                         "line_no, country, operator_id, consignee_id, path, tpp, draws, "
                         "effective_at, recorded_at, actor, idempotency_key, rule_set, "
                         "rule_set_version, note, encoding, prev_hash, hash)"))
    finally:
        engine.dispose()
    refused = api.reserve([line("SG", "sg-lab")], key="after")
    assert refused.status_code == 503, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/chain-broken") and problem["code"] == "chain_broken"
    assert "entry seq 4 exists past the chain head at seq 3" in problem["detail"]
    verdict = api.get("/v1/audit/verify", role="auditor").json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == 4
    answer = api.get("/v1/reconciliation/findings?kind=chain_broken", role="auditor")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    items = found["items"] if isinstance(found, dict) else found
    assert [(f["job"], f["details"]["seq"]) for f in items] == [("write", 4)]
