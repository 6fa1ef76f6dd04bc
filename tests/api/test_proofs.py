"""GET /v1/audit/proof/inclusion and /proof/consistency (issue 11): proofs verify
against the signed heads' roots with ledger.merkle alone, before and after the
node table caught up; roles; bad parameters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ledger.heads import create_signing_key
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.merkle_store import catch_up
from ledger.store.engine import create_ledger_engine
from tests.api.conftest import Api, line, seed_consignee, seed_operator


def _b(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


def test_proofs_verify_against_signed_heads(
    db_url: str, start_api: Callable[..., Api], tmp_path: Path
) -> None:
    key = tmp_path / "signing.pem"
    create_signing_key(key)
    api = start_api(db_url, signing_key_path=str(key))
    seed_operator(api, "op1", hq="SG")
    seed_consignee(api, "sg-lab", "SG")
    heads = []
    for n in range(7):
        lines = [line("SG", "sg-lab") for _ in range(1 + n % 3)]  # 1-3 entries a write
        assert api.reserve(lines, key=f"k{n}").status_code == 201
        heads.append(api.get("/v1/audit/head", role="auditor").json())
        if n == 3:  # half the tree in the node table, the rest computed from entries
            engine = create_ledger_engine(db_url)
            try:
                assert catch_up(engine) > 0
            finally:
                engine.dispose()
    last = heads[-1]
    assert last["seq"] == sum(1 + n % 3 for n in range(7))
    for head in heads:
        size, root = head["seq"], bytes.fromhex(head["root"])
        for seq in range(1, size + 1):
            r = api.get(f"/v1/audit/proof/inclusion?seq={seq}&head_seq={size}", role="auditor")
            assert r.status_code == 200, r.text
            doc = r.json()
            assert set(doc) == {"seq", "head_seq", "leaf_index", "tree_size", "leaf_hash",
                                "root", "proof"}
            assert (doc["seq"], doc["head_seq"], doc["leaf_index"], doc["tree_size"]) == \
                (seq, size, seq - 1, size)
            assert doc["root"] == head["root"]
            assert verify_inclusion(bytes.fromhex(doc["leaf_hash"]), seq - 1, size,
                                    _b(doc["proof"]), root)
        r = api.get(f"/v1/audit/proof/consistency?from={size}&to={last['seq']}")
        assert r.status_code == 200, r.text
        doc = r.json()
        assert set(doc) == {"from", "to", "root_from", "root_to", "proof"}
        assert (doc["root_from"], doc["root_to"]) == (head["root"], last["root"])
        assert verify_consistency(size, last["seq"], root, bytes.fromhex(last["root"]),
                                  _b(doc["proof"]))
    # defaults: the chain head
    doc = api.get("/v1/audit/proof/inclusion?seq=1").json()
    assert doc["head_seq"] == last["seq"] and doc["root"] == last["root"]
    doc = api.get(f"/v1/audit/proof/consistency?from={heads[0]['seq']}").json()
    assert doc["to"] == last["seq"]

    # roles: admins and auditors; not operators or vendors
    for role in ("operator", "vendor"):
        assert api.get("/v1/audit/proof/inclusion?seq=1", role=role).status_code == 403
        assert api.get("/v1/audit/proof/consistency?from=1", role=role).status_code == 403
    assert api.get("/v1/audit/proof/inclusion?seq=1", role=None).status_code == 401

    # bad parameters: 422 problem+json; a tree past the head: 404
    n = last["seq"]
    for query in ("seq=0", "seq=-1", "seq=x", "", f"seq={n}&head_seq={n - 1}",
                  "seq=1&head_seq=0", "seq=1&head_seq=1.5"):
        r = api.get(f"/v1/audit/proof/inclusion?{query}")
        assert r.status_code == 422, (query, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    for query in ("from=-1", "", "from=3&to=2", "from=a"):
        r = api.get(f"/v1/audit/proof/consistency?{query}")
        assert r.status_code == 422, (query, r.text)
    for path in (f"inclusion?seq=1&head_seq={n + 1}", f"consistency?from=1&to={n + 1}",
                 "inclusion?seq=1&head_seq=4611686018427387904"):
        r = api.get(f"/v1/audit/proof/{path}")
        assert r.status_code in (404, 422), (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert api.get(f"/v1/audit/proof/inclusion?seq=1&head_seq={n + 1}").status_code == 404
