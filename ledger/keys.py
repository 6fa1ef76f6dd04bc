"""API keys: made by the CLI, printed once, stored only as a SHA-256 hash.

Keys are 256 random bits, so a fast hash is enough: there is nothing to
brute-force that a slow KDF would protect.

Lifecycle: a key may carry an expiry (`expires_at`); from that instant it is
refused. A revoked key is refused from the moment its revocation commits.
Every creation and revocation is recorded in `api_key_event` (append-only:
triggers refuse UPDATE and DELETE) with its actor and time. Revoking twice
changes nothing and records nothing more.

Processes that cache principals hear of a revocation through Redis: the
revoker publishes on REVOKED_CHANNEL and waits until every subscribed process
has acknowledged dropping the key (`announce_revocation`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger import cursors
from ledger.chain import format_time
from ledger.errors import InvalidInput, NotFound
from ledger.reference import check_id
from ledger.store.engine import writer
from ledger.store.models import ApiKey, ApiKeyEvent

log = logging.getLogger(__name__)

ROLES = ("admin", "vendor", "operator", "auditor")
KEY_PREFIX = "tpl_"
MAX_PAGE = 500
# Redis: where revocations are announced, and how long a revoker waits for the
# subscribed processes to confirm they dropped the key.
REVOKED_CHANNEL = "tpp:keys:revoked"
ACK_WAIT_S = 2.0

API_KEY = ApiKey.__table__  # type: ignore[attr-defined]
API_KEY_EVENT = ApiKeyEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (the actor in the ledger), role and scope."""

    key_id: str
    name: str
    role: str
    operator_id: str | None
    expires_at: datetime | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def cli_actor() -> str:
    """The actor recorded for changes made from the command line: `cli:<login>`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"[:64]


def create_key(
    engine: sa.Engine, role: str, name: str, now: datetime, operator_id: str | None = None,
    expires_at: datetime | None = None, actor: str | None = None,
) -> str:
    """Stores a new key's hash and a `created` event; returns the key itself (the only
    time it exists). `expires_at`, when given, must be in the future."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if role == "operator":
        if not operator_id:
            raise InvalidInput("an operator key names its operator", field="operator")
        check_id(operator_id, "operator")
    elif operator_id is not None:
        raise InvalidInput("only an operator key names an operator", field="operator")
    if not name or len(name) > 100:
        raise InvalidInput("a key's name is 1 to 100 characters", field="name")
    if expires_at is not None and expires_at <= now:
        raise InvalidInput(f"the expiry {format_time(expires_at)} is not in the future",
                           field="expires_at")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(8)
    with Session(writer(engine)) as session, session.begin():
        session.add(
            ApiKey(
                id=key_id,
                name=name,
                role=role,
                operator_id=operator_id,
                key_hash=hash_key(key),
                created_at=now,
                expires_at=expires_at,
            )
        )
        session.add(ApiKeyEvent(key_id=key_id, action="created",
                                actor=(actor or cli_actor())[:64], at=now))
    return key


def authenticate(engine: sa.Engine, key: str, now: datetime | None = None) -> Principal | None:
    """The principal for a presented key, or None when unknown, revoked or (given
    `now`) expired."""
    with Session(engine) as session:
        row = session.execute(
            sa.select(ApiKey).where(ApiKey.key_hash == hash_key(key))  # type: ignore[arg-type]
        ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    principal = Principal(row.id, row.name, row.role, row.operator_id, row.expires_at)
    if now is not None and principal.expired(now):
        return None
    return principal


def key_view(row: Any) -> dict[str, Any]:
    """A key as the API and the CLI show it (never its hash)."""
    return {
        "id": row.id,
        "role": row.role,
        "operator_id": row.operator_id,
        "name": row.name,
        "created_at": format_time(row.created_at),
        "revoked_at": None if row.revoked_at is None else format_time(row.revoked_at),
        "expires_at": None if row.expires_at is None else format_time(row.expires_at),
    }


def _encode_cursor(created_at: datetime, key_id: str) -> str:
    return cursors.encode("keys", at=cursors.encode_time(created_at), after=key_id)


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    doc = cursors.decode(cursor, "keys")
    return cursors.time_field(doc, "at"), cursors.field(doc, "after", str)


def list_keys(engine: sa.Engine, cursor: str | None = None,
              limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
    """One page of keys, oldest first; the second value resumes after the page (None:
    the end)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = sa.select(API_KEY).order_by(API_KEY.c.created_at, API_KEY.c.id).limit(limit + 1)
    if cursor:
        at, key_id = _decode_cursor(cursor)
        query = query.where(sa.or_(API_KEY.c.created_at > at,
                                   sa.and_(API_KEY.c.created_at == at, API_KEY.c.id > key_id)))
    with Session(engine) as session:
        rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return ([key_view(r) for r in rows],
            _encode_cursor(rows[-1].created_at, rows[-1].id) if more else None)


def revoke_key(engine: sa.Engine, key_id: str, now: datetime,
               actor: str | None = None) -> tuple[dict[str, Any], bool]:
    """Revokes a key (refused from this commit on) and records who did it.

    Returns the key's view and whether this call revoked it (False: it already was,
    and nothing was written). NotFound for an unknown id."""
    with Session(writer(engine)) as session, session.begin():
        row = session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key {key_id!r}")
        changed = row.revoked_at is None
        if changed:
            row.revoked_at = now
            session.add(ApiKeyEvent(key_id=key_id, action="revoked",
                                    actor=(actor or cli_actor())[:64], at=now))
            session.flush()
        return key_view(row), changed


def key_events(engine: sa.Engine, key_id: str | None = None) -> list[dict[str, Any]]:
    """The recorded creations and revocations, oldest first (optionally of one key)."""
    query = sa.select(API_KEY_EVENT).order_by(API_KEY_EVENT.c.id)
    if key_id is not None:
        query = query.where(API_KEY_EVENT.c.key_id == key_id)
    with Session(engine) as session:
        return [{"key_id": r.key_id, "action": r.action, "actor": r.actor,
                 "at": format_time(r.at)} for r in session.execute(query)]


_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `2w`, `45s` as a timedelta (positive)."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"{text!r} is not a duration like 90d, 12h, 30m, 2w",
                           field="expires_in")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def announce_revocation(redis_url: str, key_id: str, wait_s: float = ACK_WAIT_S) -> tuple[int, int]:
    """Tells every process caching principals (through Redis) that `key_id` is revoked,
    and waits until each subscribed process confirms it dropped the key.

    Returns (processes reached, processes that confirmed). Raises redis.RedisError or
    OSError when Redis cannot be reached (processes then refuse the key within their
    principal cache's short lifetime)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=wait_s + 1,
                                  socket_connect_timeout=1)
    try:
        ack_key = f"tpp:keys:ack:{secrets.token_hex(8)}"
        reached = int(client.publish(REVOKED_CHANNEL,
                                     json.dumps({"key_id": key_id, "ack": ack_key})))
        confirmed = 0
        deadline = time.monotonic() + wait_s
        while confirmed < reached:
            left = deadline - time.monotonic()
            if left <= 0 or client.blpop([ack_key], timeout=max(left, 0.01)) is None:
                break
            confirmed += 1
        client.delete(ack_key)
        if confirmed < reached:
            log.warning("revocation of %s: %d of %d processes confirmed in %.1f s",
                        key_id, confirmed, reached, wait_s)
        return reached, confirmed
    finally:
        client.close()
