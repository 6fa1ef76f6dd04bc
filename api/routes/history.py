"""History: entries page by page, and balances as they stood at an instant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, get
from litestar.params import FromQuery, QueryParameter

from api.auth import (
    ADMIN,
    AUDITOR,
    OPERATOR,
    allow,
    operator_scope,
    own_records_of,
    principal_of,
)
from api.schemas import BalancesOut, EntriesOut, to_struct
from api.services import Services, ServicesDep
from api.wire import problem_responses, utc_time
from ledger.books import ENTRY_KINDS
from ledger.queries import MAX_PAGE, EntryFilter
from ledger.reference import check_id

HISTORY_READERS = (ADMIN, AUDITOR, OPERATOR)


KIND_DESCRIPTION = " | ".join(ENTRY_KINDS)


def _ids(**ids: str | None) -> None:
    for name, value in ids.items():
        if value is not None:
            check_id(value, name)


def entry_filter(request: Request, country: str | None, operator_id: str | None,
                 consignee_id: str | None, kind: str | None, since: datetime | None,
                 until: datetime | None) -> EntryFilter:
    """The filter of an entries query (JSON or CSV): the caller's role and operator scope
    applied, ids and times checked."""
    principal = principal_of(request)
    operator_id = operator_scope(principal, operator_id)
    _ids(operator_id=operator_id, consignee_id=consignee_id)
    return EntryFilter(country, operator_id, consignee_id, kind,
                       utc_time(since, "since"), utc_time(until, "until"),
                       operator_scope=own_records_of(principal))


async def read_balances(
    request: Request, services: Services, as_of: datetime | None, country: str | None,
    operator_id: str | None, consignee_id: str | None,
) -> tuple[datetime, list[dict[str, Any]]]:
    """(instant, buckets) of a balances query (JSON or CSV), scoped like `entry_filter`."""
    principal = principal_of(request)
    operator_id = operator_scope(principal, operator_id)
    _ids(operator_id=operator_id, consignee_id=consignee_id)
    at = utc_time(as_of, "as_of") or services.ledger.clock.now()
    buckets = await anyio.to_thread.run_sync(
        services.reader.balances_as_of, at, country, operator_id, consignee_id,
        own_records_of(principal),
    )
    return at, buckets


@get("/v1/entries", guards=[allow(*HISTORY_READERS)], tags=["history"],
     responses=problem_responses(403, 422))
async def entries(
    request: Request,
    services: ServicesDep,
    country: FromQuery[str | None] = None,
    operator_id: FromQuery[str | None] = None,
    consignee_id: FromQuery[str | None] = None,
    kind: Annotated[str | None, QueryParameter(
        description=KIND_DESCRIPTION)] = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 100,
) -> EntriesOut:
    """Entries in seq order, filtered on effective time (`since` <= at <= `until`).

    Pass `next_cursor` back as `cursor` for the next page; null means the end.
    """
    filt = entry_filter(request, country, operator_id, consignee_id, kind, since, until)
    page = await anyio.to_thread.run_sync(services.reader.entries, filt, cursor, limit)
    return to_struct({"items": page.items, "next_cursor": page.next_cursor}, EntriesOut)


@get("/v1/balances", guards=[allow(*HISTORY_READERS)], tags=["history"],
     responses=problem_responses(403, 422))
async def balances(
    request: Request,
    services: ServicesDep,
    as_of: FromQuery[datetime | None] = None,
    country: FromQuery[str | None] = None,
    operator_id: FromQuery[str | None] = None,
    consignee_id: FromQuery[str | None] = None,
) -> BalancesOut:
    """Capped buckets drawn on by the scope's entries, as they stood at `as_of` (default now).

    A hold counts for nothing once its reservation's expiry is at or before `as_of`.
    """
    at, buckets = await read_balances(request, services, as_of, country, operator_id,
                                      consignee_id)
    return to_struct({"as_of": at, "buckets": buckets}, BalancesOut)
