"""The client's standalone proof checks (ledger_client.merkle, hashlib only) agree
with ledger.merkle on every size up to 40 and refuse tampered proofs."""

from __future__ import annotations

import hashlib

from ledger_client import merkle as cm

from ledger.merkle import (
    MemoryTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [leaf_hash(hashlib.sha256(bytes([i])).hexdigest()) for i in range(40)]
TREE = MemoryTree(LEAVES)


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x80]) + h[1:]


def test_client_verifier_matches_the_ledger_s() -> None:
    assert cm.leaf_hash("ab" * 32) == leaf_hash("ab" * 32)
    for n in range(1, 41):
        root = TREE.root(n)
        for i in range(n):
            p = inclusion_proof(i, n, TREE.get_node)
            assert cm.verify_inclusion(LEAVES[i], i, n, p, root)
            assert verify_inclusion(LEAVES[i], i, n, p, root)
            for j in range(len(p)):
                bad = [*p[:j], _flip(p[j]), *p[j + 1:]]
                assert not cm.verify_inclusion(LEAVES[i], i, n, bad, root)
            assert not cm.verify_inclusion(LEAVES[i], i, n, p, _flip(root))
        for m in range(0, n + 1):
            p = consistency_proof(m, n, TREE.get_node)
            rm = TREE.root(m)
            assert cm.verify_consistency(m, n, rm, root, p) is verify_consistency(
                m, n, rm, root, p) is True
            for j in range(len(p)):
                bad = [*p[:j], _flip(p[j]), *p[j + 1:]]
                assert not cm.verify_consistency(m, n, rm, root, bad)
            if 0 < m < n:
                assert not cm.verify_consistency(m, n, _flip(rm), root, p)
