"""The client fetches the live server's Merkle proofs and checks them offline
(ledger_client.merkle) against roots the test computes itself from the entries."""

from __future__ import annotations

from typing import Any

from ledger_client import merkle as cm
from ledger_client._core import line

from ledger.merkle import MemoryTree, leaf_hash
from tests.client.conftest import seed_parties


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x80]) + h[1:]


def test_client_fetches_and_checks_live_proofs(client: Any) -> None:
    admin, vendor, auditor = client("admin"), client("vendor"), client("auditor")
    p = seed_parties(admin)
    for _ in range(3):
        vendor.reserve([line("AE", "g42", p.consignee_id, chip="H100-SXM", quantity=1)])
    entries = list(auditor.entries())
    hashes = [e["hash"] for e in sorted(entries, key=lambda e: e["seq"])]
    n = len(hashes)
    assert [e["seq"] for e in sorted(entries, key=lambda e: e["seq"])] == list(range(1, n + 1))
    tree = MemoryTree([leaf_hash(h) for h in hashes])  # the test's own, trusted roots
    for seq in (1, n // 2 or 1, n):
        doc = auditor.inclusion_proof(seq, head_seq=n)
        assert cm.check_inclusion(doc, tree.root(n).hex(), entry_hash=hashes[seq - 1])
        other = hashes[seq % n]  # another entry's hash (n >= 3)
        assert not cm.check_inclusion(doc, tree.root(n).hex(), entry_hash=other)
        assert not cm.check_inclusion(doc, _flip(tree.root(n)).hex())
    doc = auditor.consistency_proof(1, n)
    assert cm.check_consistency(doc, tree.root(1).hex(), tree.root(n).hex())
    assert not cm.check_consistency(doc, tree.root(1).hex(), _flip(tree.root(n)).hex())
    assert auditor.consistency_proof(n - 1)["to"] == n
