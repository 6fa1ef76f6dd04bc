"""Jobs: what the scheduled jobs ran, and what they found (admin, auditor)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import get
from litestar.params import QueryParameter
from msgspec import Struct

from api.auth import ADMIN, AUDITOR, allow
from api.schemas import to_struct
from api.services import ServicesDep
from api.wire import problem_responses
from ledger.job_records import MAX_LIMIT, list_findings, list_job_runs


class JobRunOut(Struct):
    id: int
    job: str
    period: str
    runner: str
    started_at: str
    finished_at: str | None
    outcome: str  # running | ok | failed | skipped
    figures: dict[str, Any]


class JobRunsOut(Struct):
    items: list[JobRunOut]
    next_before_id: int | None


class FindingOut(Struct):
    id: int
    kind: str
    subject: str
    job: str
    run_id: int | None
    found_at: str
    details: dict[str, Any]


class FindingsOut(Struct):
    items: list[FindingOut]
    next_before_id: int | None


def _next(items: list[dict[str, Any]], limit: int) -> int | None:
    return int(items[-1]["id"]) if len(items) == limit else None


@get("/v1/jobs/runs", guards=[allow(ADMIN, AUDITOR)], tags=["jobs"],
     responses=problem_responses(403, 422))
async def job_runs(
    services: ServicesDep,
    job: Annotated[str | None, QueryParameter(max_length=40)] = None,
    outcome: Annotated[str | None, QueryParameter(
        description="running | ok | failed | skipped")] = None,
    before_id: Annotated[int | None, QueryParameter(ge=1)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
) -> JobRunsOut:
    """Recorded job runs, newest first; pass `next_before_id` as `before_id` for more."""
    items = await anyio.to_thread.run_sync(
        lambda: list_job_runs(services.ledger.engine, job, outcome, before_id, limit))
    return to_struct({"items": items, "next_before_id": _next(items, limit)}, JobRunsOut)


@get("/v1/reconciliation/findings", guards=[allow(ADMIN, AUDITOR)], tags=["jobs"],
     responses=problem_responses(403, 422))
async def findings(
    services: ServicesDep,
    kind: Annotated[str | None, QueryParameter(
        max_length=40, description="projection_drift | projection_repaired | "
        "projection_missing | chain_broken | shipment_without_reservation | over_shipment | "
        "destination_mismatch | consignee_mismatch | not_shipped | cache_mismatch")] = None,
    job: Annotated[str | None, QueryParameter(max_length=40)] = None,
    before_id: Annotated[int | None, QueryParameter(ge=1)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
) -> FindingsOut:
    """Findings of reconciliation, chain verification, shipment matching and the cache
    check, newest first; pass `next_before_id` as `before_id` for more."""
    items = await anyio.to_thread.run_sync(
        lambda: list_findings(services.ledger.engine, kind, job, before_id, limit))
    return to_struct({"items": items, "next_before_id": _next(items, limit)}, FindingsOut)
