"""The hash chain: a canonical, versioned byte encoding of an entry and its hash.

hash = sha256(prev_hash_bytes || canonical_bytes(entry)). The encoding is
versioned (`encoding` field) so a future change never re-interprets old bytes.
Version 1: the fields below as compact JSON with sorted keys, ints as ints,
times as RFC 3339 UTC with microseconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
ENCODING_VERSION = 1

# Every field of an entry except `hash` itself (prev_hash is hashed as the prefix).
HASHED_FIELDS = (
    "seq",
    "kind",
    "reservation_id",
    "line_no",
    "country",
    "operator_id",
    "consignee_id",
    "path",
    "tpp",
    "draws",
    "effective_at",
    "recorded_at",
    "actor",
    "idempotency_key",
    "rule_set",
    "rule_set_version",
    "note",
    "encoding",
)


def format_time(at: datetime) -> str:
    """RFC 3339 UTC with microseconds: the one textual form of a time in hashes."""
    if at.tzinfo is None:
        raise ValueError("naive datetime in a hashed field")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, bool | float):
        raise TypeError(f"{type(value).__name__} is not allowed in a hashed entry")
    if isinstance(value, list | tuple):
        return [_canonical_value(v) for v in value]
    return value


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The exact bytes hashed for one entry (encoding version 1)."""
    encoding = fields["encoding"]
    if encoding != ENCODING_VERSION:
        raise ValueError(f"unknown entry encoding {encoding}")
    doc = {name: _canonical_value(fields[name]) for name in HASHED_FIELDS}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_bytes(fields)).hexdigest()


def entry_fields(entry: Any) -> dict[str, Any]:
    """The hashed fields of a stored entry (any object with those attributes)."""
    return {name: getattr(entry, name) for name in HASHED_FIELDS}


@dataclass
class ChainReport:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None
    reason: str | None = None


class ChainVerifier:
    """Walks entries in seq order, one at a time: constant memory, resumable."""

    def __init__(self, start_seq: int = 0, start_hash: str = GENESIS_HASH) -> None:
        self.expected_seq = start_seq + 1
        self.head = start_hash
        self.count = 0
        self.first_bad_seq: int | None = None
        self.reason: str | None = None

    def feed(self, entry: Any) -> bool:
        """Checks one entry; returns False (and remembers why) at the first bad one."""
        if self.first_bad_seq is not None:
            return False
        seq = entry.seq
        if seq != self.expected_seq:
            expected = self.expected_seq
            return self._bad(expected, f"gap: expected seq {expected}, found {seq}")
        if entry.prev_hash != self.head:
            return self._bad(seq, "prev_hash does not match the previous entry's hash")
        try:
            computed = entry_hash(entry.prev_hash, entry_fields(entry))
        except (TypeError, ValueError) as exc:
            return self._bad(seq, f"cannot encode: {exc}")
        if computed != entry.hash:
            return self._bad(seq, "hash does not match the entry's contents")
        self.head = entry.hash
        self.expected_seq += 1
        self.count += 1
        return True

    def _bad(self, seq: int, reason: str) -> bool:
        self.first_bad_seq = seq
        self.reason = reason
        return False

    def report(self) -> ChainReport:
        return ChainReport(
            ok=self.first_bad_seq is None,
            entries=self.count,
            head=self.head,
            first_bad_seq=self.first_bad_seq,
            reason=self.reason,
        )


def verify_entries(entries: Iterable[Any]) -> ChainReport:
    verifier = ChainVerifier()
    for entry in entries:
        if not verifier.feed(entry):
            break
    return verifier.report()
