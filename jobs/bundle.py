"""Audit bundles: `ledger export` writes one; `ledger verify-bundle` checks it offline.

Format (JSON lines, compact, UTF-8, one object per line, every line ending "\\n"):

    {"type":"bundle","format":"tpp-ledger-bundle/1","since":S,"exported_at":T,
     "public_key":PEM|null,"key_id":str|null}
    {"type":"entry", <every hashed field>, "prev_hash":..., "hash":...}   # seq S, S+1, ...
    {"type":"checkpoint","seq":..,"hash":..,"at":..,"key_id":..,"signature":..}
    {"type":"head","seq":..,"hash":..,"root":..,"at":..,"key_id":..,"signature":..}
    {"type":"end","entries":n,"checkpoints":m,"heads":h,
     "sha256":<hex of all bytes before this line>,
     "signature":<Ed25519 over "tpp-ledger bundle v1\\n" + sha256 hex> | null}

Verification needs no database and guarantees, when it passes: the entries
form an unbroken hash chain from the first entry's prev_hash; every
checkpoint and signed head (ledger.heads) names an exported entry's exact
hash and carries a valid signature (heads signed by a retired key: by a key
the header lists in `head_keys`); a bundle from seq 1 also has each head's
Merkle root recomputed; and not one byte of the file differs from what the key holder
exported (the end line signs a digest of everything before it). An auditor
should pin the public key they obtained out of band (`--public-key`): the
key inside the bundle only proves the bundle is self-consistent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.signing import (
    checkpoint_message,
    key_id,
    load_public_pem,
    load_signing_key,
    public_pem,
    verify_signature,
)
from ledger.chain import GENESIS_HASH, HASHED_FIELDS, ChainVerifier, format_time
from ledger.heads import SIGNED_HEAD, KeyRing, SignedHead
from ledger.merkle import MerkleFrontier, leaf_hash, verify_consistency, verify_inclusion
from ledger.store.job_models import ChainCheckpoint
from ledger.store.models import Entry

FORMAT = "tpp-ledger-bundle/1"
END_PREFIX = b"tpp-ledger bundle v1\n"
ENTRY = Entry.__table__  # type: ignore[attr-defined]
CHECKPOINT = ChainCheckpoint.__table__  # type: ignore[attr-defined]


def _line(doc: dict[str, Any]) -> bytes:
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode() + b"\n"


def _jsonable(value: Any) -> Any:
    return format_time(value) if isinstance(value, datetime) else value


@dataclass
class ExportSummary:
    entries: int
    checkpoints: int
    first_seq: int | None
    last_seq: int | None
    signed: bool
    heads: int = 0


def export_bundle(engine: sa.Engine, since: int, out: IO[bytes], now: datetime,
                  signing_key_path: str | None,
                  public_keys: str | None = None) -> ExportSummary:
    """Writes entries with seq >= `since`, the signed checkpoints and signed heads among
    them, and the end line. `public_keys`: retired keys (LEDGER_SIGNING_PUBLIC_KEYS),
    listed in the header so heads they signed can be checked."""
    key = load_signing_key(signing_key_path) if signing_key_path else None
    ring = KeyRing.load(signing_key_path, public_keys) if key else KeyRing()
    digest = hashlib.sha256()

    def write(doc: dict[str, Any]) -> None:
        data = _line(doc)
        digest.update(data)
        out.write(data)

    write({"type": "bundle", "format": FORMAT, "since": since, "exported_at": format_time(now),
           "public_key": public_pem(key.public_key()) if key else None,
           "key_id": key_id(key.public_key()) if key else None, "head_keys": ring.pems(),
           "merkle_frontier": _frontier_before(engine, since)})
    count, first, last = 0, None, None
    with Session(engine) as session:
        rows = session.execute(sa.select(ENTRY).where(ENTRY.c.seq >= since)
                               .order_by(ENTRY.c.seq).execution_options(yield_per=2000))
        for row in rows:
            fields = {name: _jsonable(getattr(row, name)) for name in HASHED_FIELDS}
            write({"type": "entry", **fields, "prev_hash": row.prev_hash, "hash": row.hash})
            count += 1
            first = row.seq if first is None else first
            last = row.seq
        checkpoints = heads = proofs = 0
        head_seqs: list[int] = []
        if last is not None:
            for cp in session.execute(
                sa.select(CHECKPOINT).where(CHECKPOINT.c.kind == "signed",
                                            CHECKPOINT.c.seq.between(since, last))
                .order_by(CHECKPOINT.c.seq)
            ):
                write({"type": "checkpoint", "seq": cp.seq, "hash": cp.hash,
                       "at": format_time(cp.at), "key_id": cp.key_id, "signature": cp.signature})
                checkpoints += 1
            for row in session.execute(
                sa.select(SIGNED_HEAD).where(SIGNED_HEAD.c.seq.between(since, last))
                .order_by(SIGNED_HEAD.c.seq).execution_options(yield_per=2000)
            ):
                write({"type": "head", **SignedHead.from_row(row).doc()})
                heads += 1
                head_seqs.append(row.seq)
            proofs = _write_proofs(session, write, since, first or since, last, head_seqs)
    hexdigest = digest.hexdigest()
    signature = key.sign(END_PREFIX + hexdigest.encode()).hex() if key else None
    out.write(_line({"type": "end", "entries": count, "checkpoints": checkpoints,
                     "heads": heads, "proofs": proofs, "sha256": hexdigest,
                     "signature": signature}))
    return ExportSummary(count, checkpoints, first, last, key is not None, heads)


class BundleError(Exception):
    """The first bad item of a bundle, named."""


@dataclass
class BundleReport:
    entries: int
    checkpoints: int
    first_seq: int | None
    last_seq: int | None
    head: str
    key_id: str | None
    heads: int = 0
    # Each head's Merkle root recomputed from the entries (from seq 1, or continuing
    # the header's frontier, which the first matching signed head then vouches for).
    roots_checked: bool = False
    proofs: int = 0  # inclusion and consistency proofs checked against signed roots


def _lines(data: bytes) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    if not data.endswith(b"\n"):
        raise BundleError("the file does not end with a newline (truncated or altered)")
    offset = 0
    for number, raw in enumerate(data[:-1].split(b"\n"), start=1):
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"line {number}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            raise BundleError(f"line {number}: not a bundle record")
        yield number, data[:offset], doc
        offset += len(raw) + 1


def verify_bundle(data: bytes, pinned_public_key: str | None = None,
                  allow_unsigned: bool = False) -> BundleReport:
    """Checks a whole bundle offline; raises BundleError naming the first bad item."""
    lines = _lines(data)
    number, _, header = next(lines, (0, b"", {}))
    if header.get("type") != "bundle" or header.get("format") != FORMAT:
        raise BundleError(f"line {max(number, 1)}: not a {FORMAT} header")
    pem = pinned_public_key or header.get("public_key")
    public = None
    if pem:
        try:
            public = load_public_pem(pem)
        except ValueError as exc:
            raise BundleError(f"line 1: bad public key ({exc})") from None
        if pinned_public_key and header.get("public_key") not in (None, pinned_public_key):
            raise BundleError("line 1: the bundle's public key is not the pinned key")
    elif not allow_unsigned:
        raise BundleError("line 1: unsigned bundle (no public key); --allow-unsigned to accept")
    ring = KeyRing()
    if public is not None:
        ring.add(public)
    head_keys = header.get("head_keys") or {}
    if public is not None and isinstance(head_keys, dict):
        for pem_text in head_keys.values():  # vouched for by the end line's signature
            try:
                ring.add(load_public_pem(str(pem_text)))
            except ValueError as exc:
                raise BundleError(f"line 1: bad key in head_keys ({exc})") from None
    head_seqs = _head_seqs(data) | _proof_sizes(data)
    proofs = ProofChecker(hashes_of=lambda: hashes)
    roots: dict[int, str] = {}
    frontier: MerkleFrontier | None = None
    verifier: ChainVerifier | None = None
    hashes: dict[int, str] = {}
    checkpoints = heads = 0
    first_seq: int | None = None
    for number, before, doc in lines:
        kind = doc["type"]
        if kind == "entry":
            if checkpoints or proofs.count:
                raise BundleError(f"line {number}: entry after checkpoints or proofs")
            entry = _entry(number, doc)
            if verifier is None:
                first_seq = entry.seq
                since = header.get("since")
                if entry.seq != max(int(since or 1), 1):
                    raise BundleError(f"line {number}: first entry is seq {entry.seq}, "
                                      f"header says since {since}")
                if entry.seq == 1 and entry.prev_hash != GENESIS_HASH:
                    raise BundleError(f"line {number} (entry seq 1): prev_hash is not genesis")
                verifier = ChainVerifier(entry.seq - 1, entry.prev_hash)
                frontier = _start_frontier(number, header, entry.seq, roots)
            try:
                fed = verifier.feed(entry)
            except (LookupError, TypeError, ValueError, AttributeError) as exc:
                raise BundleError(f"line {number} (entry seq {entry.seq}): malformed ({exc!r})"
                                  ) from None
            if not fed:
                raise BundleError(f"line {number} (entry seq {verifier.first_bad_seq}): "
                                  f"{verifier.reason}")
            hashes[entry.seq] = entry.hash
            if frontier is not None:
                frontier.append(leaf_hash(entry.hash))
                if entry.seq in head_seqs:
                    roots[entry.seq] = frontier.root().hex()
        elif kind == "checkpoint":
            if heads:
                raise BundleError(f"line {number}: checkpoint after heads")
            checkpoints += 1
            _check_checkpoint(number, doc, hashes, public)
        elif kind == "head":
            heads += 1
            _check_head(number, doc, hashes, roots, ring if public is not None else None)
            proofs.head_roots[int(doc["seq"])] = str(doc.get("root"))
        elif kind in ("prior_head", "consistency", "inclusion"):
            proofs.check(number, doc, roots, ring if public is not None else None)
        elif kind == "end":
            _check_end(number, doc, before, len(hashes), checkpoints, public)
            if doc.get("proofs", 0) != proofs.count:
                raise BundleError(f"line {number} (end): {doc.get('proofs')} proofs announced, "
                                  f"{proofs.count} found")
            if "heads" in doc and doc.get("heads") != heads:
                raise BundleError(f"line {number} (end): {doc.get('heads')} heads announced, "
                                  f"{heads} found")
            if next(lines, None) is not None:
                raise BundleError(f"line {number + 1}: data after the end line")
            return BundleReport(len(hashes), checkpoints, first_seq,
                                None if verifier is None else verifier.expected_seq - 1,
                                GENESIS_HASH if verifier is None else verifier.head,
                                None if public is None else key_id(public), heads,
                                frontier is not None, proofs.checked)
        else:
            raise BundleError(f"line {number}: unknown record type {kind!r}")
    raise BundleError("the end line is missing (truncated bundle)")


def _entry(number: int, doc: dict[str, Any]) -> SimpleNamespace:
    """An entry record as the chain verifier reads it: times parsed back to datetimes,
    and only in their one canonical spelling (so no byte of a time is free to change)."""
    try:
        fields = {f: doc[f] for f in (*HASHED_FIELDS, "prev_hash", "hash")}
    except KeyError as exc:
        raise BundleError(f"line {number}: entry lacks field {exc}") from None
    for name in ("effective_at", "recorded_at"):
        text = fields[name]
        try:
            at = datetime.fromisoformat(str(text))
            canonical = format_time(at)
        except ValueError:
            canonical = None
        if canonical != text:
            raise BundleError(f"line {number} (entry seq {fields['seq']}): {name} {text!r} "
                              "is not a canonical RFC 3339 UTC time")
        fields[name] = at
    return SimpleNamespace(**fields)


def _check_checkpoint(number: int, doc: dict[str, Any], hashes: dict[int, str],
                      public: Any) -> None:
    seq = doc.get("seq")
    name = f"line {number} (checkpoint seq {seq})"
    if not isinstance(seq, int) or seq not in hashes:
        raise BundleError(f"{name}: no exported entry has this seq")
    if doc.get("hash") != hashes[seq]:
        raise BundleError(f"{name}: hash does not match entry {seq}")
    if public is None:
        return
    if doc.get("key_id") != key_id(public):
        raise BundleError(f"{name}: signed by key {doc.get('key_id')}, not {key_id(public)}")
    message = checkpoint_message(seq, str(doc.get("hash")), str(doc.get("at")))
    if not verify_signature(public, str(doc.get("signature")), message):
        raise BundleError(f"{name}: bad signature")


def _head_seqs(data: bytes) -> set[int]:
    """Seqs of the bundle's head records (so roots are computed only there)."""
    seqs = set()
    for raw in data.split(b"\n"):
        if b'"type":"head"' in raw:
            try:
                seq = json.loads(raw).get("seq")
            except (ValueError, AttributeError):
                continue
            if isinstance(seq, int):
                seqs.add(seq)
    return seqs


def _check_head(number: int, doc: dict[str, Any], hashes: dict[int, str],
                roots: dict[int, str], ring: KeyRing | None) -> None:
    seq = doc.get("seq")
    name = f"line {number} (signed head seq {seq})"
    try:
        head = SignedHead.from_doc({k: v for k, v in doc.items() if k != "type"})
    except ValueError as exc:
        raise BundleError(f"{name}: {exc}") from None
    if not isinstance(seq, int) or seq not in hashes:
        raise BundleError(f"{name}: no exported entry has this seq")
    if head.hash != hashes[seq]:
        raise BundleError(f"{name}: hash does not match entry {seq}")
    if seq in roots and head.root != roots[seq]:
        raise BundleError(f"{name}: Merkle root does not match entries 1..{seq}")
    if ring is not None:
        reason = ring.check(head)
        if reason is not None:
            raise BundleError(f"{name}: {reason}")


def _check_end(number: int, doc: dict[str, Any], before: bytes, entries: int,
               checkpoints: int, public: Any) -> None:
    if doc.get("entries") != entries or doc.get("checkpoints") != checkpoints:
        raise BundleError(f"line {number} (end): counts {doc.get('entries')}/"
                          f"{doc.get('checkpoints')} != found {entries}/{checkpoints}")
    digest = hashlib.sha256(before).hexdigest()
    if doc.get("sha256") != digest:
        raise BundleError(f"line {number} (end): digest does not match the bundle's contents")
    if public is not None and not verify_signature(
        public, str(doc.get("signature")), END_PREFIX + digest.encode()
    ):
        raise BundleError(f"line {number} (end): bad signature over the bundle")


# -- Merkle proofs in bundles (RFC 9162; ledger.merkle) ---------------------------------
#
# A bundle stays O(entries): the header carries the Merkle frontier of the entries
# before `since` (O(log n) hashes), so the verifier continues the tree over the
# exported entries and recomputes the root at every head; the records below add a
# consistency proof from the bundle's first signed head to its last, one from the
# last signed head before `since` (the previous bundle's last, which the auditor
# holds: `prior_head`) to the last, and inclusion proofs of the first and last
# exported entries under the last head. Each is checked with ledger.merkle alone
# against roots the verifier trusts: signed heads' roots and recomputed roots.


def _frontier_before(engine: sa.Engine, since: int) -> dict[str, Any] | None:
    """The frontier state of entries 1..since-1 (None from seq 1)."""
    if since <= 1:
        return None
    from ledger.merkle_store import TreeSizeError, frontier_at

    with Session(engine) as session:
        try:
            return frontier_at(session, since - 1).to_state()
        except TreeSizeError:
            return None  # `since` past the head: nothing is exported anyway


def _write_proofs(session: Session, write: Any, since: int, first: int, last: int,
                  head_seqs: list[int]) -> int:
    """Writes the prior head and the proofs (see above); returns how many records."""
    from ledger.merkle_store import prove_consistency, prove_inclusion

    count = 0
    prior = session.execute(sa.select(SIGNED_HEAD).where(SIGNED_HEAD.c.seq < since)
                            .order_by(SIGNED_HEAD.c.seq.desc()).limit(1)).first()
    if prior is not None:
        write({"type": "prior_head", **SignedHead.from_row(prior).doc()})
        count += 1
    # Without signed heads (no signing key): proofs up to the last exported entry,
    # whose roots the verifier recomputes (it proves self-consistency only).
    top = head_seqs[-1] if head_seqs else last
    start = head_seqs[0] if head_seqs else first
    sizes = sorted({m for m in (start, None if prior is None else prior.seq)
                    if m is not None and 0 < m < top})
    for m in sizes:
        write({"type": "consistency", **prove_consistency(session, m, top).doc()})
        count += 1
    for seq in sorted({first, min(last, top)}):
        if seq <= top:
            write({"type": "inclusion", **prove_inclusion(session, seq, top).doc()})
            count += 1
    return count


def _proof_sizes(data: bytes) -> set[int]:
    """Tree sizes the bundle's proofs name (so their roots are recomputed)."""
    sizes: set[int] = set()
    for raw in data.split(b"\n"):
        if b'"type":"consistency"' in raw or b'"type":"inclusion"' in raw:
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            for name in ("from", "to", "head_seq"):
                if isinstance(doc.get(name), int):
                    sizes.add(doc[name])
    return sizes


def _start_frontier(number: int, header: dict[str, Any], seq: int,
                    roots: dict[int, str]) -> MerkleFrontier | None:
    """The tree before the first exported entry: empty from seq 1, else the header's
    frontier (None when the header has none: roots are then not recomputed)."""
    if seq == 1:
        return MerkleFrontier()
    state = header.get("merkle_frontier")
    if state is None:
        return None
    try:
        frontier = MerkleFrontier.from_state(state)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"line 1: bad merkle_frontier ({exc})") from None
    if frontier.size != seq - 1:
        raise BundleError(f"line 1: merkle_frontier has size {frontier.size}, "
                          f"the first entry is seq {seq}")
    roots[seq - 1] = frontier.root().hex()
    return frontier


@dataclass
class ProofChecker:
    """Checks prior_head, consistency and inclusion records against the roots the
    verifier trusts: recomputed from entries, or of a signed head it checked."""

    hashes_of: Any  # () -> {seq: entry hash} of the exported entries
    head_roots: dict[int, str] = field(default_factory=dict)
    count: int = 0  # proof records seen
    checked: int = 0  # inclusion and consistency proofs verified

    def _root(self, name: str, size: Any, roots: dict[int, str], what: str) -> bytes:
        if not isinstance(size, int):
            raise BundleError(f"{name}: {what} is not a tree size")
        known = roots.get(size) or self.head_roots.get(size)
        if known is None:
            raise BundleError(f"{name}: no signed head or recomputed root at tree size {size}")
        return bytes.fromhex(known)

    def check(self, number: int, doc: dict[str, Any], roots: dict[int, str],
              ring: KeyRing | None) -> None:
        kind = doc["type"]
        self.count += 1
        if kind == "prior_head":
            name = f"line {number} (prior head seq {doc.get('seq')})"
            try:
                head = SignedHead.from_doc({k: v for k, v in doc.items() if k != "type"})
            except ValueError as exc:
                raise BundleError(f"{name}: {exc}") from None
            if ring is not None:
                reason = ring.check(head)
                if reason is not None:
                    raise BundleError(f"{name}: {reason}")
            if head.seq in roots and roots[head.seq] != head.root:
                raise BundleError(f"{name}: Merkle root does not match the tree before "
                                  "the exported entries")
            self.head_roots.setdefault(head.seq, head.root)
            return
        try:
            proof = [bytes.fromhex(h) for h in doc["proof"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"line {number} ({kind} proof): malformed ({exc!r})") from None
        if kind == "consistency":
            first: Any = doc.get("from")
            second: Any = doc.get("to")
            name = f"line {number} (consistency proof {first} -> {second})"
            root_from = self._root(name, first, roots, "from")
            root_to = self._root(name, second, roots, "to")
            if (doc.get("root_from"), doc.get("root_to")) != (root_from.hex(), root_to.hex()):
                raise BundleError(f"{name}: roots differ from the signed or recomputed ones")
            if not verify_consistency(first, second, root_from, root_to, proof):
                raise BundleError(f"{name}: the proof does not verify (tree {second} does "
                                  f"not extend tree {first})")
        else:
            seq: Any = doc.get("seq")
            size: Any = doc.get("head_seq")
            name = f"line {number} (inclusion proof of seq {seq} in {size})"
            hashes = self.hashes_of()
            if not isinstance(seq, int) or seq not in hashes:
                raise BundleError(f"{name}: no exported entry has this seq")
            root = self._root(name, size, roots, "head_seq")
            leaf = leaf_hash(hashes[seq])
            if doc.get("leaf_hash") != leaf.hex() or doc.get("root") != root.hex():
                raise BundleError(f"{name}: leaf or root differs from the entry's / head's")
            if doc.get("leaf_index") != seq - 1 or doc.get("tree_size") != size or \
                    not verify_inclusion(leaf, seq - 1, size, proof, root):
                raise BundleError(f"{name}: the proof does not verify")
        self.checked += 1
