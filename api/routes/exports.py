"""CSV forms of the history: `/v1/entries.csv` and `/v1/balances.csv`.

Same filters, roles and operator scope as `/v1/entries` and `/v1/balances` (the same
helpers and the same query functions); the answer is streamed: entries page by page
through the keyset query, up to the chain head at the start (see ledger.csv_export).
Errors in the filters are problem+json as usual: the first page is read before the
first byte is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, get
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream

from api.auth import allow
from api.routes.history import HISTORY_READERS, KIND_DESCRIPTION, entry_filter, read_balances
from api.services import ServicesDep
from api.wire import problem_responses
from ledger.chain import format_time
from ledger.csv_export import (
    BALANCE_COLUMNS,
    ENTRY_COLUMNS,
    balance_rows,
    entry_pages,
    entry_rows,
    header,
)
from ledger.queries import MAX_PAGE

MEDIA_TYPE = "text/csv"  # Litestar adds "; charset=utf-8"
EXPORT_PAGE = MAX_PAGE  # entries per keyset query while streaming


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@get("/v1/entries.csv", guards=[allow(*HISTORY_READERS)], tags=["history"],
     media_type=MEDIA_TYPE, responses=problem_responses(403, 422))
async def entries_csv(
    request: Request,
    services: ServicesDep,
    country: FromQuery[str | None] = None,
    operator_id: FromQuery[str | None] = None,
    consignee_id: FromQuery[str | None] = None,
    kind: Annotated[str | None, QueryParameter(
        description=KIND_DESCRIPTION)] = None,
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
) -> Stream:
    """Every entry `/v1/entries` would list for these filters, in seq order, as CSV
    with a header row, streamed page by page up to the chain head at the start.
    Columns: seq, kind, reservation_id, line_no, tpp, at, recorded_at, country,
    operator_id, consignee_id, path, draws (JSON), actor, rule_set, rule_set_version,
    note, hash, prev_hash. Roles and operator scope as `/v1/entries`."""
    filt = entry_filter(request, country, operator_id, consignee_id, kind, since, until)
    pages = entry_pages(services.reader, filt, page_size=EXPORT_PAGE)
    first = await anyio.to_thread.run_sync(next, pages, None)  # errors before the stream

    async def body() -> AsyncIterator[str]:
        yield header(ENTRY_COLUMNS)
        page = first
        while page is not None:
            yield entry_rows(page)
            page = await anyio.to_thread.run_sync(_next_page, pages)

    return Stream(body(), media_type=MEDIA_TYPE, headers=_attachment("entries.csv"))


def _next_page(pages: Iterator[list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    return next(pages, None)


@get("/v1/balances.csv", guards=[allow(*HISTORY_READERS)], tags=["history"],
     media_type=MEDIA_TYPE, responses=problem_responses(403, 422))
async def balances_csv(
    request: Request,
    services: ServicesDep,
    as_of: FromQuery[datetime | None] = None,
    country: FromQuery[str | None] = None,
    operator_id: FromQuery[str | None] = None,
    consignee_id: FromQuery[str | None] = None,
) -> Stream:
    """The buckets `/v1/balances` would show at `as_of` (default now), as CSV with a
    header row. Columns: as_of, kind, key, period, cap, committed, held, available. Roles and
    operator scope as `/v1/balances`."""
    at, buckets = await read_balances(request, services, as_of, country, operator_id,
                                      consignee_id)

    async def body() -> AsyncIterator[str]:
        yield header(BALANCE_COLUMNS)
        yield balance_rows(format_time(at), buckets)

    return Stream(body(), media_type=MEDIA_TYPE, headers=_attachment("balances.csv"))
