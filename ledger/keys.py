"""API keys: made by the CLI, printed once, stored only as a SHA-256 hash.

Keys are 256 random bits, so a fast hash is enough: there is nothing to
brute-force that a slow KDF would protect.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.errors import InvalidInput
from ledger.reference import check_id
from ledger.store.engine import writer
from ledger.store.models import ApiKey

ROLES = ("admin", "vendor", "operator", "auditor")
KEY_PREFIX = "tpl_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id (the actor in the ledger), role and scope."""

    key_id: str
    name: str
    role: str
    operator_id: str | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    engine: sa.Engine, role: str, name: str, now: datetime, operator_id: str | None = None
) -> str:
    """Stores a new key's hash and returns the key itself (the only time it exists)."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if role == "operator":
        if not operator_id:
            raise InvalidInput("an operator key names its operator", field="operator")
        check_id(operator_id, "operator")
    elif operator_id is not None:
        raise InvalidInput("only an operator key names an operator", field="operator")
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
            )
        )
    return key


def authenticate(engine: sa.Engine, key: str) -> Principal | None:
    """The principal for a presented key, or None when unknown or revoked."""
    with Session(engine) as session:
        row = session.execute(
            sa.select(ApiKey).where(ApiKey.key_hash == hash_key(key))  # type: ignore[arg-type]
        ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return Principal(row.id, row.name, row.role, row.operator_id)
