"""Writing job runs and findings.

Guarantees:
- `claim` inserts the (job, period) row BEFORE the job does any work; if the
  insert hits the unique constraint, someone else owns that period and the
  caller must do nothing. So each job period runs at most once, whatever
  the number of schedulers, even if a leader lock lapsed;
- `record_finding` is idempotent: the same finding (same fingerprint) is
  stored once, however many runs or imports see it.

Every write here goes through `writer(engine)` (BEGIN IMMEDIATE on SQLite, see
ledger.store.engine): a job's transaction waits for the write lock instead of
failing with "database is locked" when the API or another job is writing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from ledger.store.engine import writer
from ledger.store.job_models import Finding, JobRun

JOB_RUN = JobRun.__table__  # type: ignore[attr-defined]
FINDING = Finding.__table__  # type: ignore[attr-defined]


def period_of(at: datetime, interval_seconds: int) -> str:
    """The start of the fixed, epoch-aligned period of `interval_seconds` containing `at`.

    Epoch alignment makes every scheduler compute the same period for the
    same instant, whenever it started.
    """
    epoch = int(at.timestamp())
    start = epoch - epoch % interval_seconds
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def claim(engine: sa.Engine, job: str, period: str, runner: str, now: datetime) -> int | None:
    """Inserts the run row for (job, period); its id, or None when already claimed."""
    return _insert_run(engine, job, period, runner, now, outcome="running", figures={})


def record_failed(engine: sa.Engine, job: str, period: str, runner: str, now: datetime,
                  figures: dict[str, Any]) -> int | None:
    """Records a run that failed before it could claim its period (leader lock or
    database unavailable) as `failed`; None when the period already has a row."""
    return _insert_run(engine, job, period, runner, now, outcome="failed", figures=figures,
                       finished_at=now)


def _insert_run(engine: sa.Engine, job: str, period: str, runner: str, now: datetime,
                outcome: str, figures: dict[str, Any],
                finished_at: datetime | None = None) -> int | None:
    try:
        with Session(writer(engine)) as session, session.begin():
            result = session.execute(
                sa.insert(JOB_RUN)
                .values(job=job, period=period, runner=runner[:120], started_at=now,
                        finished_at=finished_at, outcome=outcome, figures=figures)
                .returning(JOB_RUN.c.id)
            )
            return int(result.scalar_one())
    except sa_exc.IntegrityError:
        return None


def finish(engine: sa.Engine, run_id: int, outcome: str, figures: dict[str, Any],
           now: datetime) -> None:
    with Session(writer(engine)) as session, session.begin():
        session.execute(
            sa.update(JOB_RUN).where(JOB_RUN.c.id == run_id)
            .values(outcome=outcome, figures=figures, finished_at=now)
        )


def fingerprint(kind: str, subject: str, identity: Any) -> str:
    raw = json.dumps([kind, subject, identity], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def record_finding(
    session: Session,
    *,
    kind: str,
    subject: str,
    job: str,
    details: dict[str, Any],
    now: datetime,
    run_id: int | None = None,
    identity: Any = None,
) -> bool:
    """Stores a finding unless the same one (kind, subject, identity) exists; True if new.

    `session` must be a write transaction (`Session(writer(engine))`): this reads,
    then writes, which a deferred SQLite transaction cannot do under contention.
    `identity` is what makes two findings about one subject different (e.g. the
    drifted figures); it defaults to `details`.
    """
    fp = fingerprint(kind, subject, details if identity is None else identity)
    exists = session.execute(sa.select(FINDING.c.id).where(FINDING.c.fingerprint == fp)).first()
    if exists is not None:
        return False
    # A savepoint so that a concurrent insert of the same fingerprint loses quietly.
    try:
        with session.begin_nested():
            session.execute(sa.insert(FINDING).values(
                fingerprint=fp, kind=kind, subject=subject[:200], job=job, run_id=run_id,
                found_at=now, details=details))
    except sa_exc.IntegrityError:
        return False
    return True
