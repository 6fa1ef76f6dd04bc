"""Signed heads: every committed write transaction's new chain head, signed.

The signed message is the canonical JSON of

    {"v": 1, "seq": int, "hash": chain hash hex, "root": Merkle root hex,
     "at": RFC 3339 UTC, "key_id": str}

(keys sorted, compact, UTF-8) after the fixed prefix `b"tpp-ledger head v1\\n"`;
Ed25519; `key_id` is the first 16 hex digits of SHA-256 of the raw public key;
`root` is the RFC 9162 Merkle root (ledger.merkle) of entries 1..seq.

The private key is never in the database: `LEDGER_SIGNING_KEY_PATH` names the
current key (PEM), `LEDGER_SIGNING_PUBLIC_KEYS` a PEM file or a folder of PEM
files of retired public keys, still accepted when verifying. Someone with
database access but not the key can therefore not append, rewrite or reorder
past the last signed head undetected; the witnesses (ledger.witness) hold
copies of the heads outside the database, so deleting signed heads (or
restoring an older backup) is caught too.

Nothing here imports jobs/ or api/: verification needs only this module,
ledger.chain and ledger.merkle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from ledger.chain import format_time
from ledger.merkle import EMPTY_ROOT, MerkleFrontier, leaf_hash
from ledger.store.models import ChainHead, Entry
from ledger.store.models import SignedHead as SignedHeadRow

HEAD_PREFIX = b"tpp-ledger head v1\n"
HEAD_VERSION = 1
SIGNED_HEAD = SignedHeadRow.__table__  # type: ignore[attr-defined]
ENTRY = Entry.__table__  # type: ignore[attr-defined]
CHAIN_HEAD = ChainHead.__table__  # type: ignore[attr-defined]

# -- keys ----------------------------------------------------------------------


def create_signing_key(path: Path) -> str:
    """Writes a new Ed25519 private key (PEM, mode 0600); returns its public key PEM.
    Refuses to overwrite an existing file: losing a signing key is not undoable."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return public_pem(key.public_key())


def load_signing_key(path: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_pem(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256(raw public key): names the key in heads."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def verify_signature(public: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


_PEM_BLOCK = "-----BEGIN PUBLIC KEY-----"


def _pems(text: str) -> Iterator[str]:
    """Each PUBLIC KEY block of a file that may hold several."""
    for part in text.split(_PEM_BLOCK)[1:]:
        yield _PEM_BLOCK + part.split("-----END PUBLIC KEY-----")[0] + "-----END PUBLIC KEY-----\n"


@dataclass
class KeyRing:
    """The current signing key (may be None: heads are then not signed) and every public
    key accepted when verifying, by key id (the current one's included)."""

    current: Ed25519PrivateKey | None = None
    public: dict[str, Ed25519PublicKey] = field(default_factory=dict)

    @property
    def current_id(self) -> str | None:
        return None if self.current is None else key_id(self.current.public_key())

    @classmethod
    def load(cls, key_path: str | None, public_keys: str | None = None) -> KeyRing:
        """From LEDGER_SIGNING_KEY_PATH and LEDGER_SIGNING_PUBLIC_KEYS (a PEM file, or a
        folder whose *.pem files each hold one or more public keys)."""
        ring = cls()
        if key_path:
            ring.current = load_signing_key(key_path)
            ring.add(ring.current.public_key())
        if public_keys:
            path = Path(public_keys)
            files = sorted(path.glob("*.pem")) if path.is_dir() else [path]
            for file in files:
                for pem in _pems(file.read_text()):
                    ring.add(load_public_pem(pem))
        return ring

    def add(self, public: Ed25519PublicKey) -> str:
        kid = key_id(public)
        self.public[kid] = public
        return kid

    def pems(self) -> dict[str, str]:
        return {kid: public_pem(key) for kid, key in sorted(self.public.items())}

    def sign(self, seq: int, chain_hash: str, root: str, at: datetime) -> SignedHead:
        assert self.current is not None
        head = SignedHead(seq, chain_hash, root, format_time(at), self.current_id or "", "")
        head.signature = self.current.sign(head.message()).hex()
        return head

    def check(self, head: SignedHead) -> str | None:
        """None when the head's signature is good under a known key, else why not."""
        public = self.public.get(head.key_id)
        if public is None:
            return f"signed by unknown key {head.key_id!r}"
        if not verify_signature(public, head.signature, head.message()):
            return f"bad signature (key {head.key_id})"
        return None


# -- the signed head ---------------------------------------------------------------


def head_message(seq: int, chain_hash: str, root: str, at: str, kid: str) -> bytes:
    """The exact bytes signed; `at` is RFC 3339 UTC as `ledger.chain.format_time` writes it."""
    body = json.dumps({"v": HEAD_VERSION, "seq": seq, "hash": chain_hash, "root": root,
                       "at": at, "key_id": kid}, sort_keys=True, separators=(",", ":"))
    return HEAD_PREFIX + body.encode()


@dataclass
class SignedHead:
    seq: int
    hash: str
    root: str
    at: str  # RFC 3339 UTC, as signed
    key_id: str
    signature: str

    def message(self) -> bytes:
        return head_message(self.seq, self.hash, self.root, self.at, self.key_id)

    def doc(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> bytes:
        """One witness-file line (compact JSON, sorted keys, newline)."""
        return json.dumps(self.doc(), sort_keys=True, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SignedHead:
        try:
            head = cls(int(doc["seq"]), str(doc["hash"]), str(doc.get("root") or ""),
                       str(doc["at"]), str(doc["key_id"]), str(doc["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a signed head: {exc!r}") from None
        return head

    @classmethod
    def from_row(cls, row: Any) -> SignedHead:
        return cls(int(row.seq), row.hash, row.root, format_time(row.at), row.key_id,
                   row.signature)

    def row(self, at: datetime) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "root": self.root, "at": at,
                "key_id": self.key_id, "signature": self.signature}


def latest_head(engine: sa.Engine) -> SignedHead | None:
    with Session(engine) as session:
        row = session.execute(
            sa.select(SIGNED_HEAD).order_by(SIGNED_HEAD.c.seq.desc()).limit(1)
        ).first()
    return None if row is None else SignedHead.from_row(row)


# -- the writer's state --------------------------------------------------------------


class HeadSigner:
    """What a Ledger keeps for signing heads: the key ring, and the Merkle frontier of
    the chain as this process last saw it committed (caught up from the database when
    another process wrote in between). `listeners` hear of each committed signed head
    (the witnesses); they must never block."""

    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys
        self._frontier: MerkleFrontier | None = None
        self._frontier_hash: str | None = None  # chain hash at the frontier's size
        self._lock = threading.Lock()
        self.last: SignedHead | None = None  # the last head this process committed
        self.listeners: list[Any] = []

    @property
    def signing(self) -> bool:
        return self.keys.current is not None

    def frontier_at(self, session: Session, seq: int, chain_hash: str) -> MerkleFrontier:
        """A private copy of the frontier of entries 1..seq (whose hash is `chain_hash`),
        caught up from the database if needed: O(entries since this process last wrote).
        The first time (or after the chain shrank) it starts from the stored Merkle
        nodes at the last signed head, trusted only if they give that head's signed
        root; else from genesis (O(n))."""
        with self._lock:
            frontier = None if self._frontier is None else self._frontier.copy()
            known = self._frontier_hash
        if frontier is not None and frontier.size == seq and known == chain_hash:
            return frontier
        if frontier is None or frontier.size > seq:
            frontier = self._from_stored_nodes(session, seq) or MerkleFrontier()
        rows = session.execute(
            sa.select(ENTRY.c.hash).where(ENTRY.c.seq > frontier.size, ENTRY.c.seq <= seq)
            .order_by(ENTRY.c.seq).execution_options(yield_per=20_000)
        )
        for (entry_hash,) in rows:
            frontier.append(leaf_hash(entry_hash))
        return frontier

    def _from_stored_nodes(self, session: Session, seq: int) -> MerkleFrontier | None:
        """The frontier of entries 1..seq from the merkle_node table at the last signed
        head at or below `seq` whose signature the ring accepts
        (ledger.merkle_store.frontier_for_signing: trusted only if it reproduces that
        head's signed root, else read from the entries); None without such a head."""
        row = session.execute(sa.select(SIGNED_HEAD).where(SIGNED_HEAD.c.seq <= seq)
                              .order_by(SIGNED_HEAD.c.seq.desc()).limit(1)).first()
        if row is None:
            return None
        head = SignedHead.from_row(row)
        if self.keys.check(head) is not None:
            return None
        from ledger.merkle_store import frontier_for_signing

        return frontier_for_signing(session, seq, head.seq, head.root)

    def committed(self, frontier: MerkleFrontier, chain_hash: str,
                  head: SignedHead | None) -> None:
        """After a commit: remember the frontier, and tell the witnesses."""
        with self._lock:
            if self._frontier is None or frontier.size >= self._frontier.size:
                self._frontier = frontier
                self._frontier_hash = chain_hash
            if head is not None and (self.last is None or head.seq >= self.last.seq):
                self.last = head
        if head is not None:
            for listener in self.listeners:
                with contextlib.suppress(Exception):  # a witness never undoes a commit
                    listener(head)


def root_hex(frontier: MerkleFrontier) -> str:
    return frontier.root().hex() if frontier.size else EMPTY_ROOT.hex()


# -- verification ---------------------------------------------------------------------


@dataclass
class Problem:
    """One thing wrong, at a seq. kind: broken (a hash or link does not match),
    truncated (a head, signed or witnessed, lies past the database's end), unsigned
    (entries past the last signed head), signature (bad or unknown key)."""

    kind: str
    seq: int
    message: str


@dataclass
class HeadsReport:
    entries: int  # entries in the database (its last seq)
    chain_head: int  # chain_head.seq
    signed_heads: int  # stored signed heads checked
    witnessed_heads: int
    last_signed: int | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.seq) if self.problems else None


def read_witness(source: str, timeout: float = 10.0) -> list[SignedHead]:
    """Signed heads from a witness file (one JSON object a line) or an http(s) URL
    answering the same lines, or a JSON list, or one head."""
    if source.startswith(("http://", "https://")):
        import httpx

        response = httpx.get(source, timeout=timeout)
        response.raise_for_status()
        text = response.text
    else:
        text = Path(source).read_text()
    stripped = text.strip()
    docs: list[Any]
    if stripped.startswith("["):
        docs = json.loads(stripped)
    elif stripped.startswith("{") and "\n" not in stripped:
        docs = [json.loads(stripped)]
    else:
        docs = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError:
                # A torn last line (a crash mid-write) is not a head; elsewhere it is an error.
                if number == len(text.splitlines()):
                    break
                raise ValueError(f"{source} line {number}: not JSON") from None
    return [SignedHead.from_doc(d) for d in docs]


def last_witnessed(path: str, keys: KeyRing, tail: int = 65536) -> SignedHead | None:
    """The last head of a witness file whose signature the ring accepts (reads only the
    file's tail: the file grows by a line per write). None: no file or no such head."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - tail))
            lines = file.read().split(b"\n")
    except FileNotFoundError:
        return None
    for raw in reversed(lines):
        try:
            head = SignedHead.from_doc(json.loads(raw))
        except (ValueError, AttributeError):
            continue  # a torn line, or the cut first line of the tail
        if keys.check(head) is None:
            return head
    return None


def check_heads(engine: sa.Engine, keys: KeyRing, witnessed: Iterable[SignedHead] = (),
                signing: bool | None = None) -> HeadsReport:
    """Checks the chain against every stored signed head and every witnessed head, in one
    streaming pass over (seq, hash) computing the Merkle root as it goes:

    - each head's signature (under a key of the ring; unknown keys fail);
    - the entry at the head's seq has the head's hash, and the root of entries 1..seq is
      the head's root (when the head carries one);
    - a head past the database's last entry is truncation / rollback, reported as such;
    - chain_head names the last entry;
    - when signing (default: the ring has a current key) and any head was signed,
      nothing after the last signed head is unsigned.

    It does not re-hash entries: `ledger.audit.verify_chain` does that.
    """
    signing = keys.current is not None if signing is None else signing
    problems: list[Problem] = []
    witnessed = list(witnessed)
    # Witnessed heads are few (held in memory); stored heads stream alongside the
    # entries (one per write transaction: millions on a large ledger).
    wanted: dict[int, list[SignedHead]] = {}
    for head in witnessed:
        # With no key at all, signatures cannot be checked (the caller says so).
        reason = keys.check(head) if keys.public else None
        if reason is not None:
            problems.append(Problem("signature", head.seq,
                                    f"witnessed head at seq {head.seq}: {reason}"))
        else:
            wanted.setdefault(head.seq, []).append(head)
    stored_count, last_signed = 0, None
    beyond_stored: list[int] = []
    with engine.connect() as heads_conn, Session(engine) as session:
        last_entry = session.execute(sa.select(sa.func.max(ENTRY.c.seq))).scalar() or 0
        chain_head = session.execute(
            sa.select(CHAIN_HEAD.c.seq, CHAIN_HEAD.c.hash).where(CHAIN_HEAD.c.id == 1)).one()
        stored_rows = heads_conn.execution_options(yield_per=5000).execute(
            sa.select(SIGNED_HEAD).order_by(SIGNED_HEAD.c.seq))
        stored = (SignedHead.from_row(r) for r in stored_rows)
        pending = next(stored, None)
        frontier = MerkleFrontier()
        last_hash = None

        def check(origin: str, head: SignedHead, seq: int, entry_hash: str) -> None:
            if head.hash != entry_hash:
                problems.append(Problem("broken", seq,
                    f"the entry at seq {seq} is not the one in the {origin} (hash "
                    f"{entry_hash[:16]}… vs {head.hash[:16]}…): history was rewritten"))
            elif head.root and head.root != frontier.root().hex():
                problems.append(Problem("broken", seq,
                    f"the Merkle root of entries 1..{seq} differs from the {origin}'s: "
                    "an entry before it was changed or reordered"))

        # Past the last head (stored or witnessed) no root or hash is compared: the
        # entries there need only be there, gapless (see _entries_after).
        need = max([h.seq for h in witnessed]
                   + [session.execute(sa.select(sa.func.max(SIGNED_HEAD.c.seq))).scalar() or 0])
        rows = session.execute(sa.select(ENTRY.c.seq, ENTRY.c.hash).where(ENTRY.c.seq <= need)
                               .order_by(ENTRY.c.seq).execution_options(yield_per=20_000))
        for seq, entry_hash in rows:
            if seq != frontier.size + 1:
                break  # a gap: verify_chain names it; roots past it mean nothing
            frontier.append(leaf_hash(entry_hash))
            last_hash = entry_hash
            for head in wanted.pop(seq, ()):
                check("witnessed head", head, seq, entry_hash)
            while pending is not None and pending.seq <= seq:
                stored_count += 1
                last_signed = pending.seq
                reason = keys.check(pending) if keys.public else None
                if reason is not None:
                    problems.append(Problem("signature", pending.seq,
                                            f"signed head at seq {pending.seq}: {reason}"))
                elif pending.seq == seq:
                    check("signed head", pending, seq, entry_hash)
                pending = next(stored, None)
        end = frontier.size
        if end == need:  # no gap up to the last head
            end, last_hash = _entries_after(session, end, last_hash)
        while pending is not None:  # stored heads past the entries (or past a gap)
            stored_count += 1
            last_signed = pending.seq
            reason = keys.check(pending) if keys.public else None
            if reason is not None:
                problems.append(Problem("signature", pending.seq,
                                        f"signed head at seq {pending.seq}: {reason}"))
            else:
                beyond_stored.append(pending.seq)
            pending = next(stored, None)
    # Heads past the end: one problem per origin, at the first seq missing, naming the
    # last head (truncation or rollback, not a broken hash).
    for name, beyond in (("the witness", list(wanted)),
                         ("the signed_head table", beyond_stored)):
        if beyond:
            problems.append(Problem("truncated", end + 1,
                f"the database ends at seq {end}; {name} has a signed head at seq "
                f"{max(beyond)}"))
    if chain_head.seq != last_entry:
        problems.append(Problem("broken", min(chain_head.seq, last_entry) + 1,
            f"chain_head says seq {chain_head.seq} but the last entry is seq {last_entry}"
            + (" (entries deleted)" if chain_head.seq > last_entry
               else " (entries appended past the head)")))
    elif last_entry and last_hash is not None and end == last_entry \
            and chain_head.hash != last_hash:
        problems.append(Problem("broken", last_entry,
                                f"chain_head's hash does not match entry {last_entry}"))
    signed_or_witnessed = max([h.seq for h in witnessed]
                              + ([last_signed] if last_signed is not None else []),
                              default=None)
    if signing and signed_or_witnessed is not None and last_entry > signed_or_witnessed:
        problems.append(Problem("unsigned", signed_or_witnessed + 1,
            f"entries seq {signed_or_witnessed + 1}..{last_entry} are not covered by any "
            "signed head (appended without the signing key)"))
    return HeadsReport(last_entry, chain_head.seq, stored_count, len(witnessed),
                       last_signed, problems)


def _entries_after(session: Session, end: int, last_hash: str | None) -> tuple[int, str | None]:
    """(seq, hash) of the last entry of the gapless run that continues from `end`
    (`end`, `last_hash` when none does), read without walking the run when it is
    gapless (seq is unique: as many entries as the span of their seqs)."""
    count, top = session.execute(
        sa.select(sa.func.count(), sa.func.max(ENTRY.c.seq)).where(ENTRY.c.seq > end)).one()
    if not count:
        return end, last_hash
    if top - end == count:
        return top, session.execute(sa.select(ENTRY.c.hash).where(ENTRY.c.seq == top)).scalar()
    rows = session.execute(sa.select(ENTRY.c.seq, ENTRY.c.hash).where(ENTRY.c.seq > end)
                           .order_by(ENTRY.c.seq).execution_options(yield_per=20_000))
    for seq, entry_hash in rows:
        if seq != end + 1:
            break
        end, last_hash = seq, entry_hash
    return end, last_hash


def record_chain_broken(engine: sa.Engine, detail: str, seq: int | None, now: datetime,
                        source: str) -> bool:
    """Stores a `chain_broken` finding unless the same one exists; True if new. `engine`
    must take the write lock up front on SQLite (`ledger.store.engine.writer`)."""
    from ledger.store.job_models import Finding

    table = Finding.__table__  # type: ignore[attr-defined]
    subject = f"seq {seq}" if seq is not None else "chain"
    raw = json.dumps(["chain_broken", subject, detail], sort_keys=True)
    fp = hashlib.sha256(raw.encode()).hexdigest()
    with Session(engine) as session, session.begin():
        if session.execute(sa.select(table.c.id).where(table.c.fingerprint == fp)).first():
            return False
        session.execute(sa.insert(table).values(
            fingerprint=fp, kind="chain_broken", subject=subject[:200], job=source,
            run_id=None, found_at=now, details={"seq": seq, "reason": detail}))
    return True


@dataclass
class AuditVerdict:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None
    reason: str | None


def audit_verify(engine: sa.Engine, keys: KeyRing, witnessed: Iterable[SignedHead] = ()
                 ) -> AuditVerdict:
    """What GET /v1/audit/verify answers: every entry re-hashed from genesis, then
    `check_heads` (chain_head, every stored signed head, and `witnessed`)."""
    from ledger.audit import verify_chain

    report = verify_chain(engine)
    if not report.ok:
        return AuditVerdict(False, report.entries, report.head, report.first_bad_seq,
                            report.reason)
    first = check_heads(engine, keys, witnessed).first()
    return AuditVerdict(first is None, report.entries, report.head,
                        None if first is None else first.seq,
                        None if first is None else first.message)
