"""Storage tables. Every TPP column is BIGINT; every time is UTC.

Table models never cross the API boundary: the service returns its own views.
Invariants kept by the service (and checked by the reconciliation job):
- `entry` rows are never updated or deleted (database triggers refuse it);
- `bucket.committed` / `bucket.held` equal the sums of the bucket's entries;
- `active_hold` holds exactly the draws of reservations whose status is `held`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# Constraint names must be stable for Alembic on both dialects.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: one representation on every dialect."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def tpp_column(**kwargs: Any) -> Any:
    return Field(sa_column=sa.Column(sa.BigInteger, nullable=False, **kwargs))


def time_column(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def json_column(nullable: bool = False, server_default: str | None = None) -> Any:
    default = None if server_default is None else sa.text(f"'{server_default}'")
    return Field(sa_column=sa.Column(sa.JSON, nullable=nullable, server_default=default))


class Operator(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str
    hq_country: str = Field(max_length=2)
    veu_type: str | None = Field(default=None, max_length=8)  # None | UVEU | NVEU
    veu_country: str | None = Field(default=None, max_length=2)
    footprint: dict[str, int] = json_column()  # declared pre-ledger TPP per country
    # Its ultimate parent's headquarters; None: it is its own parent.
    parent_country: str | None = Field(default=None, max_length=2)
    address: str | None = Field(default=None, max_length=500)  # one line, as sent (trimmed)
    # Names of directors / officers, and direct owners [{"name", "percent"}], as sent
    # (trimmed); rows from before revision 0006 read [].
    officers: list[str] = json_column(server_default="[]")
    owners: list[dict[str, Any]] = json_column(server_default="[]")
    updated_at: datetime = time_column()


class Consignee(SQLModel, table=True):
    # An operator's own consignees, in id order (operator-scoped lists).
    __table_args__ = (sa.Index("ix_consignee_operator_id", "operator_id", "id"),)

    id: str = Field(primary_key=True, max_length=64)
    name: str
    country: str = Field(max_length=2)
    operator_id: str | None = Field(default=None, max_length=64)
    group_id: str | None = Field(default=None, max_length=64)
    hq_country: str | None = Field(default=None, max_length=2)  # None: where it is (country)
    parent_country: str | None = Field(default=None, max_length=2)  # None: same as its hq
    address: str | None = Field(default=None, max_length=500)
    officers: list[str] = json_column(server_default="[]")
    owners: list[dict[str, Any]] = json_column(server_default="[]")
    updated_at: datetime = time_column()


class License(SQLModel, table=True):
    # Licences naming a consignee, in id order (operator-scoped lists).
    __table_args__ = (sa.Index("ix_license_consignee_id", "consignee_id", "id"),)

    id: str = Field(primary_key=True, max_length=64)
    country: str = Field(max_length=2)
    consignee_id: str | None = Field(default=None, max_length=64)
    tpp: int = tpp_column()
    valid_from: date
    valid_to: date  # inclusive
    updated_at: datetime = time_column()


class Bucket(SQLModel, table=True):
    """Balance projection of one quota: (kind, key, period)."""

    __table_args__ = (
        sa.UniqueConstraint("kind", "key", "period"),
        sa.Index("ix_bucket_kind_operator", "kind", "operator_id"),
        sa.CheckConstraint("committed >= 0 AND held >= 0", name="nonnegative"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    key: str = Field(max_length=160)
    period: str = Field(max_length=16)
    operator_id: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, max_length=2)
    committed: int = tpp_column(default=0)
    held: int = tpp_column(default=0)


class Reservation(SQLModel, table=True):
    # Pages of GET /v1/reservations, all or one vendor's, in (created_at, id) order.
    __table_args__ = (
        sa.Index("ix_reservation_created_id", "created_at", "id"),
        sa.Index("ix_reservation_owner_created_id", "owner", "created_at", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    owner: str = Field(max_length=64)  # the API key id (or actor) that made it
    status: str = Field(max_length=16)  # held | committed | released | expired
    created_at: datetime = time_column()
    expires_at: datetime = time_column(index=True)
    resolved_at: datetime | None = time_column(nullable=True)
    reversed_at: datetime | None = time_column(nullable=True)
    hold_seconds: int
    rule_set: str = Field(max_length=64)
    rule_set_version: str = Field(max_length=32)
    idempotency_key: str | None = Field(default=None, max_length=200)


class ReservationLine(SQLModel, table=True):
    __tablename__ = "reservation_line"
    __table_args__ = (sa.Index("ix_reservation_line_consignee", "consignee_id"),)

    reservation_id: str = Field(primary_key=True, max_length=40)
    line_no: int = Field(primary_key=True)
    destination_country: str = Field(max_length=2)
    operator_id: str = Field(max_length=64)
    consignee_id: str = Field(max_length=64)
    chip: str | None = Field(default=None, max_length=32)
    quantity: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    license_id: str | None = Field(default=None, max_length=64)
    tpp: int = tpp_column()
    path: str = Field(max_length=16)


class LineDraw(SQLModel, table=True):
    """Which buckets one line drew on, and how much: fixed at decision time."""

    __tablename__ = "line_draw"
    __table_args__ = (sa.Index("ix_line_draw_bucket", "bucket_id"),)

    reservation_id: str = Field(primary_key=True, max_length=40)
    line_no: int = Field(primary_key=True)
    bucket_id: int = Field(primary_key=True)
    tpp: int = tpp_column()


class ActiveHold(SQLModel, table=True):
    """Draws of reservations still `held`; lets reads ignore holds past their time."""

    __tablename__ = "active_hold"
    __table_args__ = (sa.Index("ix_active_hold_bucket_expires", "bucket_id", "expires_at"),)

    reservation_id: str = Field(primary_key=True, max_length=40)
    line_no: int = Field(primary_key=True)
    bucket_id: int = Field(primary_key=True)
    tpp: int = tpp_column()
    expires_at: datetime = time_column()


class Entry(SQLModel, table=True):
    """The append-only, hash-chained record. Never updated, never deleted."""

    __table_args__ = (
        sa.Index("ix_entry_country_seq", "country", "seq"),
        sa.Index("ix_entry_operator_seq", "operator_id", "seq"),
        sa.Index("ix_entry_consignee_seq", "consignee_id", "seq"),
        sa.Index("ix_entry_kind_seq", "kind", "seq"),
        sa.Index("ix_entry_reservation", "reservation_id"),
        sa.Index("ix_entry_effective_at", "effective_at"),
    )

    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    kind: str = Field(max_length=16)  # hold | commit | release | expire | reversal
    reservation_id: str = Field(max_length=40)
    line_no: int
    country: str = Field(max_length=2)
    operator_id: str = Field(max_length=64)
    consignee_id: str = Field(max_length=64)
    path: str = Field(max_length=16)
    tpp: int = tpp_column()
    draws: list[list[Any]] = json_column()  # [[kind, key, period, tpp], ...] sorted
    effective_at: datetime = time_column()
    recorded_at: datetime = time_column()
    actor: str = Field(max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=200)
    rule_set: str = Field(max_length=64)
    rule_set_version: str = Field(max_length=32)
    note: str | None = Field(default=None, max_length=500)
    encoding: int  # version of the canonical byte encoding hashed
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ChainHead(SQLModel, table=True):
    """The chain's tip. Its row is the ledger's write lock: every writer takes it first."""

    __tablename__ = "chain_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False, default=0))
    hash: str = Field(max_length=64)


class SignedHead(SQLModel, table=True):
    """The chain head after a committed write transaction, signed with Ed25519 in that
    same transaction (ledger.heads). Append-only (triggers refuse UPDATE and DELETE);
    the key is never stored in the database."""

    __tablename__ = "signed_head"

    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(max_length=64)
    root: str = Field(max_length=64)  # RFC 9162 Merkle root of entries 1..seq
    at: datetime = time_column()
    key_id: str = Field(max_length=16)
    signature: str = Field(max_length=128)


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_record"

    actor: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    outcome: dict[str, Any] = json_column()
    created_at: datetime = time_column()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=100)
    role: str = Field(max_length=16)  # admin | vendor | operator | auditor
    operator_id: str | None = Field(default=None, max_length=64)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = time_column()
    revoked_at: datetime | None = time_column(nullable=True)
    expires_at: datetime | None = time_column(nullable=True)  # None: never expires


class ApiKeyEvent(SQLModel, table=True):
    """Who created or revoked which key, and when. Append-only (triggers refuse
    UPDATE and DELETE); `actor` is the admin key id, or `cli:<user>` for the CLI."""

    __tablename__ = "api_key_event"
    __table_args__ = (sa.Index("ix_api_key_event_key", "key_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(max_length=40)
    action: str = Field(max_length=16)  # created | revoked
    actor: str = Field(max_length=64)
    at: datetime = time_column()


class MerkleNode(SQLModel, table=True):
    """A complete subtree of the RFC 9162 Merkle tree over entries (ledger.merkle):
    the hash of the 2**level leaves starting at leaf idx * 2**level (leaf i is the
    entry with seq i+1). Only level >= 1: a leaf is leaf_hash(entry.hash). Derived
    data (ledger.merkle_store): filled after commit by a catch-up step, rebuilt from
    entries at will, and never trusted: proofs are checked against signed roots."""

    __tablename__ = "merkle_node"

    level: int = Field(sa_column=sa.Column(sa.SmallInteger, primary_key=True,
                                           autoincrement=False))
    idx: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=sa.Column(sa.LargeBinary(32), nullable=False))


# -- restricted-party screening (ledger.screening) -----------------------------------


class ScreeningListVersion(SQLModel, table=True):
    """One import of a restricted-party list: the version in force at t is the latest
    imported at or before t. Identified by the SHA-256 of the file's bytes."""

    __tablename__ = "screening_list_version"
    __table_args__ = (sa.Index("ix_screening_list_version_imported", "imported_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, index=True)
    imported_at: datetime = time_column()
    source: str = Field(max_length=500)  # file name or "api"
    entries: int
    actor: str = Field(max_length=64)


class ScreeningEntry(SQLModel, table=True):
    """A list entry as one version had it (kept for every version: history)."""

    __tablename__ = "screening_entry"

    version_id: int = Field(primary_key=True)
    entry_id: str = Field(primary_key=True, max_length=100)
    list_name: str = Field(max_length=200)  # the CSV's `source`
    name: str = Field(max_length=500)
    fingerprint: str = Field(max_length=64)  # SHA-256 of the entry's fields
    data: dict[str, Any] = json_column()


class ScreeningEntryKey(SQLModel, table=True):
    """Normalised names, aliases, addresses and officers of the current version's
    entries: screening looks them up by key, never scanning the list."""

    __tablename__ = "screening_entry_key"
    __table_args__ = (sa.Index("ix_screening_entry_key_lookup", "key_type", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int
    entry_id: str = Field(max_length=100)
    key_type: str = Field(max_length=16)  # name | alias | address | officer
    key: str = Field(max_length=500)


class ScreeningPartyKey(SQLModel, table=True):
    """Normalised name, address, officers and owners of each operator and consignee."""

    __tablename__ = "screening_party_key"
    __table_args__ = (
        sa.Index("ix_screening_party_key_lookup", "key_type", "key"),
        sa.Index("ix_screening_party_key_party", "party_kind", "party_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    party_kind: str = Field(max_length=16)  # operator | consignee
    party_id: str = Field(max_length=64)
    key_type: str = Field(max_length=16)  # name | address | officer | owner
    key: str = Field(max_length=500)
    percent: int | None = None  # owners only


class ScreeningMatch(SQLModel, table=True):
    """A party's current match with an entry of the list version in force (replaced on
    every party change and list import). Cleared when a clearance names the same
    party and entry fingerprints."""

    __tablename__ = "screening_match"
    __table_args__ = (sa.Index("ix_screening_match_party_id", "party_id"),)

    party_kind: str = Field(primary_key=True, max_length=16)
    party_id: str = Field(primary_key=True, max_length=64)
    entry_id: str = Field(primary_key=True, max_length=100)
    matched_on: str = Field(primary_key=True, max_length=24)
    list_name: str = Field(max_length=200)
    score: float
    version_id: int
    entry_fingerprint: str = Field(max_length=64)
    party_fingerprint: str = Field(max_length=64)
    # The party an address-and-officer match went through (one hop), if any.
    via: str | None = Field(default=None, max_length=100)
    matched_at: datetime = time_column()


class ScreeningClearance(SQLModel, table=True):
    """An admin's clearance of a match (also an entry of kind `clearance` in the chain,
    seq). Holds while the party's and the entry's fingerprints are unchanged."""

    __tablename__ = "screening_clearance"
    __table_args__ = (sa.Index("ix_screening_clearance_party_entry", "party_id", "entry_id"),)

    id: str = Field(primary_key=True, max_length=40)
    party_kind: str = Field(max_length=16)
    party_id: str = Field(max_length=64)
    entry_id: str = Field(max_length=100)
    party_fingerprint: str = Field(max_length=64)
    entry_fingerprint: str = Field(max_length=64)
    reason: str = Field(max_length=500)
    actor: str = Field(max_length=64)
    cleared_at: datetime = time_column()
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
