"""Tables written by the scheduled jobs (jobs/) and read by the API.

They live under ledger/store so that migrations and the API (which import
only `ledger`) can see them. None of them is part of the books: the entries
and the bucket projection stay in `models.py`.

Invariants:
- `job_run` has at most one row per (job, period): the row is inserted
  before the job does any work, so a second runner's insert fails and it
  does nothing (the unique constraint is the last line of defence behind
  the leader lock);
- `finding.fingerprint` is unique: re-running a job or re-importing a file
  never records the same finding twice;
- `shipment_import.content_hash` is unique: the same file imports once;
- `alert` has at most one row per (bucket, threshold, crossing).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ledger.store.models import json_column, time_column, tpp_column


class JobRun(SQLModel, table=True):
    __tablename__ = "job_run"
    __table_args__ = (sa.UniqueConstraint("job", "period"),)

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=40)
    period: str = Field(max_length=40)  # e.g. "2025-06-02T12:01:00Z" (start of the period)
    runner: str = Field(max_length=120)  # host:pid of the scheduler that ran it
    started_at: datetime = time_column(index=True)
    finished_at: datetime | None = time_column(nullable=True)
    outcome: str = Field(max_length=16)  # running | ok | failed | skipped
    figures: dict[str, Any] = json_column()


class JobLease(SQLModel, table=True):
    """The database leader lock for SQLite (PostgreSQL uses advisory locks)."""

    __tablename__ = "job_lease"

    name: str = Field(primary_key=True, max_length=120)
    holder: str = Field(max_length=64)
    expires_at: datetime = time_column()


class ChainCheckpoint(SQLModel, table=True):
    """A chain position known good: `verified` by the verify job, or `signed` with Ed25519."""

    __tablename__ = "chain_checkpoint"
    __table_args__ = (sa.UniqueConstraint("kind", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # verified | signed
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    hash: str = Field(max_length=64)
    at: datetime = time_column()
    key_id: str | None = Field(default=None, max_length=64)
    signature: str | None = Field(default=None, max_length=200)


class Finding(SQLModel, table=True):
    """Something a job found wrong (or repaired). Never deleted."""

    __table_args__ = (sa.Index("ix_finding_kind_id", "kind", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    fingerprint: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=40)
    subject: str = Field(max_length=200)  # bucket key, reservation id, seq ...
    job: str = Field(max_length=40)
    run_id: int | None = None
    found_at: datetime = time_column()
    details: dict[str, Any] = json_column()


class ShipmentImport(SQLModel, table=True):
    __tablename__ = "shipment_import"

    id: int | None = Field(default=None, primary_key=True)
    content_hash: str = Field(max_length=64, unique=True)
    source: str = Field(max_length=500)
    imported_at: datetime = time_column()
    rows: int


class Shipment(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("import_id", "row_no"),
        sa.Index("ix_shipment_reservation", "reservation_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    import_id: int
    row_no: int
    reservation_id: str = Field(max_length=40)
    chip: str = Field(max_length=32)
    quantity: int = tpp_column()
    tpp: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    ship_date: date
    destination: str = Field(max_length=2)
    consignee_id: str = Field(max_length=64)


class Alert(SQLModel, table=True):
    """One crossing of a threshold by one bucket; `cleared_at` set when it falls back below."""

    __table_args__ = (
        sa.UniqueConstraint(
            "bucket_kind", "bucket_key", "bucket_period", "threshold", "crossing",
            name="uq_alert_crossing",  # the generated name exceeds PostgreSQL's 63 bytes
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    bucket_kind: str = Field(max_length=32)
    bucket_key: str = Field(max_length=160)
    bucket_period: str = Field(max_length=16)
    threshold: int  # percent of the cap: 80 or 95
    crossing: int  # 1 for the first crossing of this threshold by this bucket, then 2, ...
    used: int = tpp_column()
    cap: int = tpp_column()
    crossed_at: datetime = time_column()
    cleared_at: datetime | None = time_column(nullable=True)


class AlertDelivery(SQLModel, table=True):
    __tablename__ = "alert_delivery"
    __table_args__ = (sa.UniqueConstraint("alert_id", "url"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int
    url: str = Field(max_length=500)
    state: str = Field(max_length=16)  # pending | delivered | failed
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    last_attempt_at: datetime | None = time_column(nullable=True)
    delivered_at: datetime | None = time_column(nullable=True)
