"""Page cursors: the one format every list of the API hands out and reads back.

A cursor is opaque to clients: URL-safe base64 (unpadded) of compact JSON
naming the list that issued it and the position after which the next page
starts. It carries a position only, never a scope: whoever presents it is
scoped by their own key, so an edited cursor can only move within what the
caller may read. A cursor of another list, or anything this service did not
issue, is InvalidInput on the field `cursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from ledger.chain import format_time
from ledger.errors import InvalidInput


def _invalid() -> InvalidInput:
    return InvalidInput("cursor is not one this service issued for this list", field="cursor")


def encode(list_name: str, **position: Any) -> str:
    """A cursor of `list_name` resuming after `position` (JSON values)."""
    doc = {"list": list_name, **position}
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, list_name: str) -> dict[str, Any]:
    """The position a cursor of `list_name` holds (checked to be a JSON object only)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise _invalid() from exc
    if not isinstance(doc, dict) or doc.get("list") != list_name:
        raise _invalid()
    return doc


def field(doc: dict[str, Any], name: str, kind: type[Any]) -> Any:
    """One value of a decoded position, of exactly `kind` (bool is not an int here)."""
    value = doc.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _invalid()
    return value


def time_field(doc: dict[str, Any], name: str) -> datetime:
    """A UTC instant written by `encode_time`."""
    try:
        at = datetime.fromisoformat(field(doc, name, str))
    except ValueError as exc:
        raise _invalid() from exc
    if at.tzinfo is None or at.utcoffset():
        raise _invalid()
    return at.astimezone(UTC)


def encode_time(at: datetime) -> str:
    return format_time(at)


def encode_seq(seq: int) -> str:
    """A cursor of the entries list: resume after `seq`."""
    return encode("entries", after=seq)


def decode_seq(cursor: str) -> int:
    """The seq an entries cursor resumes after."""
    after: int = field(decode(cursor, "entries"), "after", int)
    if not 0 <= after < 2**63:
        raise _invalid()
    return after
