"""RFC 9162 (Certificate Transparency v2) Merkle tree over ledger entries.

Leaf i (0-based) is the entry with seq i+1; the tree size is the chain head seq.

    leaf_hash(entry) = SHA-256(0x00 || bytes.fromhex(entry.hash))
    node_hash(l, r)  = SHA-256(0x01 || l || r)
    MTH({})          = SHA-256(b"")
    MTH(D[n])        = node_hash(MTH(D[0:k]), MTH(D[k:n])), k the largest power
                       of two smaller than n (RFC 9162 section 2.1.1)

Everything here is pure (no database): the writer keeps a `MerkleFrontier`, the
node store (ledger/merkle_store.py) answers `get_node`, and an auditor's client
needs only `verify_inclusion` / `verify_consistency` and this module.

`get_node(level, index)` returns the hash of the *complete* subtree of 2**level
leaves starting at leaf index * 2**level (level 0 is the leaf hash). Proofs
are built only from complete subtrees; the hash of a right-edge incomplete
subtree is folded from its complete parts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

GetNode = Callable[[int, int], bytes]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_sha256 = hashlib.sha256


def leaf_hash(entry_hash_hex: str) -> bytes:
    """The leaf of one entry: SHA-256(0x00 || entry hash bytes)."""
    return _sha256(_LEAF_PREFIX + bytes.fromhex(entry_hash_hex)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 || left || right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleFrontier:
    """The right edge of the tree (a compact range): the roots of the complete
    subtrees that make up the first `size` leaves, largest first (one per set
    bit of `size`). O(log n) memory and O(log n) hashing per append (amortised
    one node hash per leaf)."""

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        self.append_nodes(leaf)

    def append_nodes(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash; return the complete subtrees of level >= 1 that
        it completes, as (level, index, hash), lowest level first."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf is a 32-byte hash")
        made: list[tuple[int, int, bytes]] = []
        h = leaf
        position = self._size  # index of this leaf at level 0
        level = 0
        s = self._size
        hashes = self._hashes
        while s & 1:
            h = node_hash(hashes.pop(), h)
            level += 1
            position >>= 1
            made.append((level, position, h))
            s >>= 1
        hashes.append(h)
        self._size += 1
        return made

    def root(self) -> bytes:
        """MTH of the first `size` leaves (SHA-256(b"") for the empty tree)."""
        if not self._hashes:
            return EMPTY_ROOT
        r = self._hashes[-1]
        for h in reversed(self._hashes[:-1]):
            r = node_hash(h, r)
        return r

    def copy(self) -> MerkleFrontier:
        other = MerkleFrontier()
        other._size = self._size
        other._hashes = list(self._hashes)
        return other

    def to_state(self) -> dict[str, Any]:
        """JSON-serialisable state: {"size": n, "hashes": [hex, ...]} (largest subtree first)."""
        return {"size": self._size, "hashes": [h.hex() for h in self._hashes]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> MerkleFrontier:
        size = state["size"]
        if type(size) is not int or size < 0:
            raise ValueError("frontier size must be a non-negative int")
        hashes = [bytes.fromhex(h) for h in state["hashes"]]
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"frontier of size {size} needs {size.bit_count()} hashes, got {len(hashes)}"
            )
        if any(len(h) != HASH_SIZE for h in hashes):
            raise ValueError("frontier hashes are 32 bytes")
        frontier = cls()
        frontier._size = size
        frontier._hashes = hashes
        return frontier

    @classmethod
    def from_nodes(cls, size: int, get_node: GetNode) -> MerkleFrontier:
        """The frontier at `size` from stored complete subtrees (O(log n) look-ups)."""
        frontier = cls()
        frontier._size = size
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                frontier._hashes.append(get_node(level, start >> level))
                start += 1 << level
        return frontier


def frontier_from_leaves(leaves: Iterable[bytes]) -> MerkleFrontier:
    """Rebuild a frontier by appending every leaf in order."""
    frontier = MerkleFrontier()
    append = frontier.append_nodes
    for leaf in leaves:
        append(leaf)
    return frontier


# --- building proofs from complete subtrees -------------------------------------


def subtree_hash(start: int, end: int, get_node: GetNode) -> bytes:
    """MTH of leaves [start, end) where the range is a subtree the RFC recursion
    produces (start a multiple of a power of two >= end - start): fold the
    complete parts of the binary decomposition from the right."""
    n = end - start
    if n <= 0:
        raise ValueError("empty subtree")
    parts: list[bytes] = []
    pos = start
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            if pos % (1 << level):
                raise ValueError(f"unaligned subtree [{start}, {end})")
            parts.append(get_node(level, pos >> level))
            pos += 1 << level
    r = parts[-1]
    for h in reversed(parts[:-1]):
        r = node_hash(h, r)
    return r


def root_at(size: int, get_node: GetNode) -> bytes:
    """MTH of the first `size` leaves."""
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, get_node)


def inclusion_proof(index: int, size: int, get_node: GetNode) -> list[bytes]:
    """PATH(index, D[size]) of RFC 9162 section 2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} outside a tree of size {size}")
    path: list[bytes] = []
    start, end, m = 0, size, index
    # Walk from the root down, collecting siblings; reverse at the end.
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            path.append(subtree_hash(start + k, end, get_node))
            end = start + k
        else:
            path.append(subtree_hash(start, start + k, get_node))
            start += k
            m -= k
    path.reverse()
    return path


def consistency_proof(m: int, n: int, get_node: GetNode) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1 (empty when m == n or m == 0)."""
    if not 0 <= m <= n:
        raise ValueError(f"no consistency proof from size {m} to size {n}")
    if m == 0 or m == n:
        return []
    path: list[bytes] = []
    start, end, first, complete = 0, n, m, True
    while True:
        size = end - start
        if first == size:
            if not complete:
                path.append(subtree_hash(start, end, get_node))
            break
        k = _split(size)
        if first <= k:
            path.append(subtree_hash(start + k, end, get_node))
            end = start + k
        else:
            path.append(subtree_hash(start, start + k, get_node))
            start += k
            first -= k
            complete = False
    path.reverse()
    return path


# --- verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) -----------------------


def root_from_inclusion_proof(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root the proof leads to, or None when the proof has the wrong shape."""
    if not 0 <= index < size:
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when `proof` shows leaf hash `leaf` at `index` in the tree of `size`
    leaves whose root is `root` (RFC 9162 section 2.1.3.2)."""
    if any(len(p) != HASH_SIZE for p in proof):
        return False
    return root_from_inclusion_proof(leaf, index, size, proof) == root


def verify_consistency(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]
) -> bool:
    """True when `proof` shows the tree of n leaves with root `root_n` extends
    the tree of m leaves with root `root_m` (RFC 9162 section 2.1.4.2)."""
    if not 0 <= m <= n or any(len(p) != HASH_SIZE for p in proof):
        return False
    if m == 0:
        # The empty tree is a prefix of every tree; its root is fixed.
        return not proof and root_m == EMPTY_ROOT
    if m == n:
        return not proof and root_m == root_n
    if not proof:
        return False
    path = list(proof)
    if m & (m - 1) == 0:
        path.insert(0, root_m)
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root_m and sr == root_n


# --- an in-memory node source (tests, benchmarks, bundles) ----------------------


class MemoryTree:
    """All complete subtrees of a list of leaves, level by level; `get_node`
    for the proof builders. Memory: about 2n hashes."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        level = self.levels[0]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def get_node(self, level: int, index: int) -> bytes:
        try:
            return self.levels[level][index]
        except IndexError:
            raise KeyError((level, index)) from None

    def root(self, size: int | None = None) -> bytes:
        return root_at(self.size if size is None else size, self.get_node)
