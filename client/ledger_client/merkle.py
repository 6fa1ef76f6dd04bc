"""Offline checks of the ledger's Merkle proofs (RFC 9162), standalone: hashlib only.

The ledger's tree is RFC 9162's over its entries: leaf i (0-based) is the entry
with seq i+1, `leaf_hash = SHA-256(0x00 || bytes.fromhex(entry_hash))`, nodes
`SHA-256(0x01 || left || right)`, and a signed head's `root` is the root of the
tree of its `seq` entries. A proof from `GET /v1/audit/proof/inclusion` or
`/proof/consistency` is accepted only against a root you trust: a signed head
you verified (its Ed25519 signature under a key you pinned) or hold from a
witness, never the root the same answer carries.

    head = ...                      # a signed head you verified, e.g. {"seq": 27, "root": ...}
    proof = client.inclusion_proof(seq=12, head_seq=head["seq"])
    assert check_inclusion(proof, head["root"], entry_hash=entry["hash"])
    later = ...                     # a newer signed head
    proof = client.consistency_proof(head["seq"], later["seq"])
    assert check_consistency(proof, head["root"], later["root"])
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry_hash_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(entry_hash_hex)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if not 0 <= index < size or any(len(p) != 32 for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, root_first: bytes, root_second: bytes,
                       proof: Sequence[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2 (the empty tree is a prefix of every tree)."""
    if not 0 <= first <= second or any(len(p) != 32 for p in proof):
        return False
    if first == 0:
        return not proof and root_first == EMPTY_ROOT
    if first == second:
        return not proof and root_first == root_second
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, root_first)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root_first and sr == root_second


def _hashes(doc: Mapping[str, Any]) -> list[bytes] | None:
    try:
        return [bytes.fromhex(h) for h in doc["proof"]]
    except (KeyError, TypeError, ValueError):
        return None


def check_inclusion(doc: Mapping[str, Any], trusted_root_hex: str,
                    entry_hash: str | None = None) -> bool:
    """An inclusion-proof answer against a root you trust (a verified signed head's, of
    the tree of `doc["head_seq"]` entries); with `entry_hash`, also that the leaf is
    that entry's."""
    proof = _hashes(doc)
    try:
        leaf = bytes.fromhex(doc["leaf_hash"])
        seq, size = int(doc["seq"]), int(doc["head_seq"])
        root = bytes.fromhex(trusted_root_hex)
    except (KeyError, TypeError, ValueError):
        return False
    if proof is None or (entry_hash is not None and leaf != leaf_hash(entry_hash)):
        return False
    return verify_inclusion(leaf, seq - 1, size, proof, root)


def check_consistency(doc: Mapping[str, Any], trusted_root_from_hex: str,
                      trusted_root_to_hex: str) -> bool:
    """A consistency-proof answer against the roots of two signed heads you trust."""
    proof = _hashes(doc)
    try:
        first, second = int(doc["from"]), int(doc["to"])
        root_from = bytes.fromhex(trusted_root_from_hex)
        root_to = bytes.fromhex(trusted_root_to_hex)
    except (KeyError, TypeError, ValueError):
        return False
    return proof is not None and verify_consistency(first, second, root_from, root_to, proof)
