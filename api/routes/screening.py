"""Restricted-party screening (API version 1.1): list imports (admin), matches (admin,
auditor), clearances (admin). How screening decides: docs/screening.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, get, post
from litestar.params import FromQuery, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from msgspec import Struct
from sqlalchemy.orm import Session

from api.auth import ADMIN, AUDITOR, allow, principal_of
from api.examples import body
from api.schemas import to_struct
from api.services import ServicesDep
from api.wire import problem_responses, strict_body, utc_time
from ledger.errors import InvalidInput, NotFound
from ledger.screening.imports import import_list, version_at
from ledger.screening.lists import ListError
from ledger.screening.screen import list_matches


class ListImportOut(Struct):
    version_id: int
    sha256: str
    entries: int
    imported_at: str
    changed: bool  # false: the same file as the version in force; nothing changed
    parties: int
    matches: int
    findings: int


class MatchOut(Struct):
    party_id: str
    party_kind: str  # operator | consignee
    entry_id: str
    list: str
    matched_on: str  # name | alias | address_and_officer | ownership
    score: float
    state: str  # blocking | cleared
    via: str | None


class MatchesOut(Struct):
    items: list[MatchOut]


class ClearanceIn(Struct):
    party_id: str
    entry_id: str
    reason: str


class ClearanceOut(Struct):
    id: str
    party_id: str
    party_kind: str
    entry_id: str
    reason: str
    actor: str
    cleared_at: str
    seq: int  # the chain entry (kind `clearance`) recording it


class ListVersionOut(Struct):
    version_id: int
    sha256: str
    imported_at: str
    source: str
    entries: int
    actor: str


@post("/v1/screening/lists", guards=[allow(ADMIN)], tags=["screening"],
      status_code=HTTP_200_OK, responses=problem_responses(403, 415, 422))
async def import_screening_list(request: Request[Any, Any, Any],
                                services: ServicesDep) -> ListImportOut:
    """Imports a restricted-party list (body: CSV with the Consolidated Screening List's
    header, Content-Type text/csv) as the version in force from now, and rescreens every
    party. The same file as the version in force changes nothing (`changed`: false). A
    malformed row rejects the whole file: 422 naming the row."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("text/csv", "application/csv"):
        raise InvalidInput("the body must be CSV (Content-Type: text/csv)", field="Content-Type")
    content = await request.body()
    actor = principal_of(request).key_id
    now = services.ledger.clock.now()
    try:
        result = await anyio.to_thread.run_sync(
            lambda: import_list(services.ledger.engine, content, "api", actor, now))
    except ListError as exc:
        raise InvalidInput(f"{exc}; nothing imported",
                           field=f"row {exc.row}" if exc.row else "body") from None
    return to_struct(result.to_dict(), ListImportOut)


@get("/v1/screening/lists/in-force", guards=[allow(ADMIN, AUDITOR)], tags=["screening"],
     responses=problem_responses(403, 404, 422))
async def list_in_force(services: ServicesDep,
                        at: FromQuery[datetime | None] = None) -> ListVersionOut:
    """The list version in force at `at` (default now): the latest imported at or
    before it. 404 when none was."""
    when = utc_time(at, "at") or services.ledger.clock.now()
    row = await anyio.to_thread.run_sync(lambda: version_at(services.ledger.engine, when))
    if row is None:
        raise NotFound("no list version was in force then")
    return to_struct(row, ListVersionOut)


@get("/v1/screening/matches", guards=[allow(ADMIN, AUDITOR)], tags=["screening"],
     responses=problem_responses(403, 422))
async def screening_matches(
    services: ServicesDep,
    party_id: Annotated[str | None, QueryParameter(max_length=64)] = None,
) -> MatchesOut:
    """Current matches (all, or one party's) with their state: `blocking`, or `cleared`
    by an admin for the party and list entry as they are now. Ownership matches are
    shown only while the rule set says the affiliates rule is in force."""
    ledger = services.ledger

    def read() -> list[dict[str, Any]]:
        with Session(ledger.engine) as session:
            return list_matches(session, party_id, ledger.rule_set, ledger.clock.now())

    items = await anyio.to_thread.run_sync(read)
    return to_struct({"items": items}, MatchesOut)


@post("/v1/screening/clearances", guards=[allow(ADMIN)], tags=["screening"],
      status_code=HTTP_201_CREATED, before_request=strict_body(ClearanceIn),
      responses=problem_responses(403, 404, 422))
async def clear_match(request: Request[Any, Any, Any], services: ServicesDep,
                      data: Annotated[ClearanceIn, body("clearance")]) -> ClearanceOut:
    """Clears a party's match with a list entry: recorded in the hash-chained history as
    an entry of kind `clearance` (no effect on balances); the match stops blocking until
    the party's identity or the list entry changes. 404 when there is no such match."""
    actor = principal_of(request).key_id
    view = await anyio.to_thread.run_sync(
        lambda: services.ledger.clear_screening_match(
            data.party_id, data.entry_id, data.reason, actor))
    return to_struct(view, ClearanceOut)
