"""Bundles carry Merkle proofs (issue 11): the frontier before `since`, the last
signed head before it, consistency proofs to the last head and inclusion proofs;
`verify-bundle` checks them all offline, and a bundle whose proofs, frontier or
roots were altered (then re-signed, as the key holder could) is refused."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobs.bundle import END_PREFIX, BundleError, export_bundle, verify_bundle
from ledger.bootstrap import head_signer
from ledger.clock import ManualClock
from ledger.heads import create_signing_key, load_signing_key
from ledger.merkle_store import catch_up
from ledger.service import Ledger
from ledger.settings import Settings
from tests.factories import consignee, line, operator, reserve


def _grow(ledger: Ledger, writes: int) -> None:
    for n in range(writes):
        lines = [line("SG", "sg-lab", quantity=1) for _ in range(1 + n % 3)]
        assert reserve(ledger, *lines).reservation is not None


def _records(data: bytes) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(raw) for raw in data.split(b"\n") if raw]


def _resign(docs: list[dict], key_path: Path) -> bytes:  # type: ignore[type-arg]
    """The bundle rebuilt from records and signed again (what the key holder can do)."""
    body = b"".join(json.dumps(d, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode() + b"\n" for d in docs[:-1])
    end = dict(docs[-1])
    end["sha256"] = hashlib.sha256(body).hexdigest()
    end["signature"] = load_signing_key(str(key_path)).sign(
        END_PREFIX + end["sha256"].encode()).hex()
    return body + json.dumps(end, sort_keys=True, separators=(",", ":")).encode() + b"\n"


@pytest.fixture
def signed(db_url: str, engine: sa.Engine, rule_set, clock: ManualClock,  # type: ignore[no-untyped-def]
           tmp_path: Path) -> tuple[Ledger, Path]:
    key = tmp_path / "signing.pem"
    create_signing_key(key)
    settings = Settings(database_url=db_url, redis_url=None, signing_key_path=str(key))
    ledger = Ledger(engine, rule_set, clock, heads=head_signer(settings))
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    return ledger, key


def test_bundles_from_seq_1_and_from_a_later_seq_carry_checked_proofs(
    signed: tuple[Ledger, Path], clock: ManualClock
) -> None:
    ledger, key = signed
    _grow(ledger, 6)  # 12 entries
    catch_up(ledger.engine)
    first = io.BytesIO()
    export_bundle(ledger.engine, 1, first, clock.now(), str(key))
    report = verify_bundle(first.getvalue())
    assert report.roots_checked and report.proofs == 3  # consistency + 2 inclusions
    docs = _records(first.getvalue())
    assert docs[0]["merkle_frontier"] is None
    last_head = [d for d in docs if d["type"] == "head"][-1]
    assert last_head["seq"] == 12

    _grow(ledger, 5)  # entries 13..21, nodes not caught up
    second = io.BytesIO()
    export_bundle(ledger.engine, 13, second, clock.now(), str(key))
    data = second.getvalue()
    report = verify_bundle(data)
    assert report.first_seq == 13 and report.roots_checked
    docs = _records(data)
    kinds = [d["type"] for d in docs]
    assert docs[0]["merkle_frontier"]["size"] == 12
    prior = docs[kinds.index("prior_head")]
    assert prior == {**last_head, "type": "prior_head"}  # the first bundle's last head
    consistency = [d for d in docs if d["type"] == "consistency"]
    # from the prior head (12) and from the bundle's first head (13) to its last (21)
    assert {(c["from"], c["to"]) for c in consistency} == {(12, 21), (13, 21)}
    assert {(d["seq"], d["head_seq"]) for d in docs if d["type"] == "inclusion"} == \
        {(13, 21), (21, 21)}
    assert report.proofs == len(consistency) + 2

    def refused(edit, match: str) -> None:  # type: ignore[no-untyped-def]
        docs = _records(data)
        edit(docs)
        with pytest.raises(BundleError, match=match):
            verify_bundle(_resign(docs, key))

    def flip(h: str) -> str:
        return ("0" if h[0] != "0" else "1") + h[1:]

    def frontier(docs: list[dict]) -> None:  # type: ignore[type-arg]
        docs[0]["merkle_frontier"]["hashes"][0] = flip(docs[0]["merkle_frontier"]["hashes"][0])

    def consistency_hash(docs: list[dict]) -> None:  # type: ignore[type-arg]
        c = next(d for d in docs if d["type"] == "consistency")
        c["proof"][0] = flip(c["proof"][0])

    def inclusion_hash(docs: list[dict]) -> None:  # type: ignore[type-arg]
        c = next(d for d in docs if d["type"] == "inclusion")
        c["proof"][-1] = flip(c["proof"][-1])

    def prior_root(docs: list[dict]) -> None:  # type: ignore[type-arg]
        c = next(d for d in docs if d["type"] == "prior_head")
        c["root"] = flip(c["root"])

    def claimed_root(docs: list[dict]) -> None:  # type: ignore[type-arg]
        c = next(d for d in docs if d["type"] == "consistency")
        c["root_to"] = flip(c["root_to"])

    def dropped(docs: list[dict]) -> None:  # type: ignore[type-arg]
        docs.remove(next(d for d in docs if d["type"] == "inclusion"))

    refused(frontier, "Merkle root does not match")
    refused(consistency_hash, "does not verify")
    refused(inclusion_hash, "does not verify")
    refused(prior_root, "bad signature")
    refused(claimed_root, "roots differ")
    refused(dropped, "proofs announced")


def test_unsigned_bundle_checks_proofs_against_recomputed_roots(
    ledger: Ledger, clock: ManualClock
) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    _grow(ledger, 4)
    out = io.BytesIO()
    export_bundle(ledger.engine, 3, out, clock.now(), None)
    report = verify_bundle(out.getvalue(), allow_unsigned=True)
    assert report.roots_checked and report.proofs == 3 and report.heads == 0
