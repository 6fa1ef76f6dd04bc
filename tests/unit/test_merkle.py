"""ledger/merkle.py against a naive reference (recursive MTH / PATH / PROOF of
RFC 9162 section 2.1 over a list), every size 1..64 exhaustively, Hypothesis
for larger sizes, and tampered proofs rejected."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    MerkleFrontier,
    consistency_proof,
    frontier_from_leaves,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_at,
    verify_consistency,
    verify_inclusion,
)

# --- the reference: RFC 9162 section 2.1 written as literally as possible ---------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]  # d holds leaf hashes already
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True) if 0 < m < len(d) else []


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(n)]


LEAVES64 = leaves(64)
TREE64 = MemoryTree(LEAVES64)
REF_ROOTS = [ref_mth(LEAVES64[:n]) for n in range(65)]


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


# --- hashing and the frontier -----------------------------------------------------


def test_hashing_is_rfc9162() -> None:
    entry = "ab" * 32
    assert leaf_hash(entry) == hashlib.sha256(b"\x00" + bytes.fromhex(entry)).digest()
    a, b = b"a" * 32, b"b" * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert MerkleFrontier().root() == EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_frontier_roots_and_nodes_match_reference() -> None:
    frontier = MerkleFrontier()
    made: dict[tuple[int, int], bytes] = {}
    for n, leaf in enumerate(LEAVES64, start=1):
        for level, index, h in frontier.append_nodes(leaf):
            made[(level, index)] = h
        assert frontier.size == n
        assert frontier.root() == REF_ROOTS[n]
        state = frontier.to_state()
        assert MerkleFrontier.from_state(state).root() == REF_ROOTS[n]
        assert MerkleFrontier.from_nodes(n, TREE64.get_node).to_state() == state
        assert frontier_from_leaves(LEAVES64[:n]).to_state() == state
    # every complete subtree of level >= 1 was reported exactly once, and right
    expected = {
        (level, i): h
        for level, hashes in enumerate(TREE64.levels)
        if level >= 1
        for i, h in enumerate(hashes)
    }
    assert made == expected
    assert len(made) == 64 - 1


def test_from_state_rejects_bad_state() -> None:
    with pytest.raises(ValueError):
        MerkleFrontier.from_state({"size": 3, "hashes": ["00" * 32]})
    with pytest.raises(ValueError):
        MerkleFrontier.from_state({"size": 1, "hashes": ["00" * 31]})
    with pytest.raises(ValueError):
        MerkleFrontier.from_state({"size": -1, "hashes": []})


# --- proofs, exhaustively for 1..64 -------------------------------------------------


def test_inclusion_every_index_and_size() -> None:
    for size in range(1, 65):
        root = REF_ROOTS[size]
        assert root_at(size, TREE64.get_node) == root
        for index in range(size):
            proof = inclusion_proof(index, size, TREE64.get_node)
            assert proof == ref_path(index, LEAVES64[:size])
            leaf = LEAVES64[index]
            assert verify_inclusion(leaf, index, size, proof, root)
            # tampered: another leaf, another index, another size, edited,
            # dropped or extra hashes, another root
            assert not verify_inclusion(_flip(leaf), index, size, proof, root)
            if size > 1:
                other = (index + 1) % size
                assert not verify_inclusion(leaf, other, size, proof, root)
            # (the same proof and root under another claimed size can verify:
            # the size is bound to the root by the signed head, not the proof)
            assert not verify_inclusion(leaf, index, size, proof, _flip(root))
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = _flip(bad[j])
                assert not verify_inclusion(leaf, index, size, bad, root)
            if proof:
                assert not verify_inclusion(leaf, index, size, proof[:-1], root)
            assert not verify_inclusion(leaf, index, size, [*proof, root], root)


def test_consistency_every_pair() -> None:
    for n in range(1, 65):
        for m in range(0, n + 1):
            proof = consistency_proof(m, n, TREE64.get_node)
            assert proof == ref_proof(m, LEAVES64[:n])
            rm, rn = REF_ROOTS[m], REF_ROOTS[n]
            assert verify_consistency(m, n, rm, rn, proof)
            if m == 0:
                continue
            assert not verify_consistency(m, n, _flip(rm), rn, proof)
            assert not verify_consistency(m, n, rm, _flip(rn), proof)
            for j in range(len(proof)):
                bad = list(proof)
                bad[j] = _flip(bad[j])
                assert not verify_consistency(m, n, rm, rn, bad)
            if proof:
                assert not verify_consistency(m, n, rm, rn, proof[:-1])
                assert not verify_consistency(m, n, rm, rn, [*proof, rn])
            if m + 1 < n:
                # the proof for m does not prove the later size m + 1
                assert not verify_consistency(m + 1, n, REF_ROOTS[m + 1], rn, proof)


def test_proof_argument_errors() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(3, 3, TREE64.get_node)
    with pytest.raises(ValueError):
        consistency_proof(5, 4, TREE64.get_node)
    assert not verify_inclusion(LEAVES64[0], 0, 0, [], EMPTY_ROOT)
    assert not verify_consistency(5, 4, REF_ROOTS[5], REF_ROOTS[4], [])
    assert not verify_consistency(0, 4, _flip(EMPTY_ROOT), REF_ROOTS[4], [])
    assert not verify_consistency(0, 4, EMPTY_ROOT, REF_ROOTS[4], [REF_ROOTS[4]])
    assert not verify_consistency(4, 4, REF_ROOTS[4], REF_ROOTS[4], [REF_ROOTS[4]])


# --- larger sizes -------------------------------------------------------------------

BIG = leaves(3000)
BIG_TREE = MemoryTree(BIG)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_inclusion_large(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, len(BIG)))
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, BIG_TREE.get_node)
    root = BIG_TREE.root(size)
    assert root == frontier_from_leaves(BIG[:size]).root()
    assert verify_inclusion(BIG[index], index, size, proof, root)
    j = data.draw(st.integers(0, max(0, len(proof) - 1)))
    if proof:
        bad = list(proof)
        bad[j] = _flip(bad[j])
        assert not verify_inclusion(BIG[index], index, size, bad, root)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_consistency_large(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, len(BIG)))
    m = data.draw(st.integers(1, n))
    proof = consistency_proof(m, n, BIG_TREE.get_node)
    if n <= 200:
        assert proof == ref_proof(m, BIG[:n])
    rm, rn = BIG_TREE.root(m), BIG_TREE.root(n)
    assert verify_consistency(m, n, rm, rn, proof)
    if proof:
        j = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[j] = _flip(bad[j])
        assert not verify_consistency(m, n, rm, rn, bad)
    # a forked history (one leaf before m changed) is rejected
    if m < n:
        i = data.draw(st.integers(0, m - 1))
        forked = list(BIG[:n])
        forked[i] = _flip(forked[i])
        forked_tree = MemoryTree(forked)
        assert not verify_consistency(m, n, rm, forked_tree.root(n), proof)
        fproof = consistency_proof(m, n, forked_tree.get_node)
        assert not verify_consistency(m, n, rm, forked_tree.root(n), fproof)
