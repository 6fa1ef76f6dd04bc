"""Read-only views of what the scheduled jobs recorded: runs and findings.

Plain dicts (JSON-ready: times as RFC 3339 UTC) for the API and the CLI;
newest first, paged by id (`before_id`), never a table model.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.chain import format_time
from ledger.store.job_models import Finding, JobRun

JOB_RUN = JobRun.__table__  # type: ignore[attr-defined]
FINDING = Finding.__table__  # type: ignore[attr-defined]
MAX_LIMIT = 500


def _time(value: Any) -> str | None:
    return None if value is None else format_time(value)


def list_job_runs(engine: sa.Engine, job: str | None = None, outcome: str | None = None,
                  before_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = sa.select(JOB_RUN).order_by(JOB_RUN.c.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
    if job:
        query = query.where(JOB_RUN.c.job == job)
    if outcome:
        query = query.where(JOB_RUN.c.outcome == outcome)
    if before_id is not None:
        query = query.where(JOB_RUN.c.id < before_id)
    with Session(engine) as session:
        return [
            {"id": r.id, "job": r.job, "period": r.period, "runner": r.runner,
             "started_at": _time(r.started_at), "finished_at": _time(r.finished_at),
             "outcome": r.outcome, "figures": r.figures}
            for r in session.execute(query)
        ]


def list_findings(engine: sa.Engine, kind: str | None = None, job: str | None = None,
                  before_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = sa.select(FINDING).order_by(FINDING.c.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
    if kind:
        query = query.where(FINDING.c.kind == kind)
    if job:
        query = query.where(FINDING.c.job == job)
    if before_id is not None:
        query = query.where(FINDING.c.id < before_id)
    with Session(engine) as session:
        return [
            {"id": r.id, "kind": r.kind, "subject": r.subject, "job": r.job,
             "run_id": r.run_id, "found_at": _time(r.found_at), "details": r.details}
            for r in session.execute(query)
        ]
