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

import orjson

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


SORTED_FIELDS = tuple(sorted(HASHED_FIELDS))
TIME_FIELDS = ("effective_at", "recorded_at")
INT_FIELDS = ("seq", "line_no", "tpp", "encoding")
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def format_time(at: datetime) -> str:
    """RFC 3339 UTC with microseconds: the one textual form of a time in hashes."""
    if at.tzinfo is None:
        raise ValueError("naive datetime in a hashed field")
    if at.utcoffset():
        at = at.astimezone(UTC)
    return at.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The exact bytes hashed for one entry (encoding version 1): compact JSON, keys
    sorted, UTF-8, times as RFC 3339 UTC strings, integers only (no floats, no bools).

    This is the hot path of writing and verifying, so it checks the few typed
    fields directly instead of walking every value.
    """
    encoding = fields["encoding"]
    if encoding != ENCODING_VERSION:
        raise ValueError(f"unknown entry encoding {encoding}")
    doc = {name: fields[name] for name in SORTED_FIELDS}
    for name in TIME_FIELDS:
        doc[name] = format_time(doc[name])
    for name in INT_FIELDS:
        if type(doc[name]) is not int:
            raise TypeError(f"{name} must be an int, not {type(doc[name]).__name__}")
    draws = doc["draws"]
    for draw in draws:
        if type(draw[3]) is not int:
            raise TypeError(f"draw TPP must be an int, not {type(draw[3]).__name__}")
    doc["draws"] = [list(d) for d in draws]
    return orjson.dumps(doc)


def canonical_bytes_reference(fields: Mapping[str, Any]) -> bytes:
    """The same bytes through the standard library: the readable definition of the
    encoding, against which the fast path is tested."""
    doc = {name: fields[name] for name in SORTED_FIELDS}
    for name in TIME_FIELDS:
        doc[name] = format_time(doc[name])
    doc["draws"] = [list(d) for d in doc["draws"]]
    return _ENCODER.encode(doc).encode()


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_bytes(fields)).hexdigest()


def entry_fields(entry: Any) -> Mapping[str, Any]:
    """The fields of a stored entry: a database row's mapping, a mapping, or any
    object with the attributes."""
    mapping = getattr(entry, "_mapping", None)
    if mapping is not None:
        return mapping  # type: ignore[no-any-return,unused-ignore]
    if isinstance(entry, Mapping):
        return entry
    return {name: getattr(entry, name) for name in (*HASHED_FIELDS, "prev_hash", "hash")}


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
        fields = entry_fields(entry)
        seq = fields["seq"]
        if seq != self.expected_seq:
            expected = self.expected_seq
            return self._bad(expected, f"gap: expected seq {expected}, found {seq}")
        if fields["prev_hash"] != self.head:
            return self._bad(seq, "prev_hash does not match the previous entry's hash")
        try:
            computed = entry_hash(self.head, fields)
        except (TypeError, ValueError, KeyError) as exc:
            return self._bad(seq, f"cannot encode: {exc}")
        if computed != fields["hash"]:
            return self._bad(seq, "hash does not match the entry's contents")
        self.head = computed
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
