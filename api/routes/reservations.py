"""Reservations (two phases: hold, then commit or release) and the dry-run evaluate."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import anyio.to_thread
from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.auth import (
    ADMIN,
    AUDITOR,
    VENDOR,
    allow,
    principal_of,
    require_owner,
    require_role,
)
from api.examples import body
from api.problems import QuotaExceeded
from api.schemas import (
    DecidedLineOut,
    DrawOut,
    EvaluateOut,
    ReservationOut,
    ReservationsOut,
    ReserveIn,
    ReverseIn,
    ViolationOut,
    to_struct,
)
from api.services import Services, ServicesDep
from api.wire import problem_responses, strict_body, utc_time
from ledger.errors import NotFound
from ledger.listing import DEFAULT_PAGE, MAX_PAGE, Listing, Page, ReservationFilter
from ledger.reference import ID_PATTERN
from ledger.views import LineInput, ReservationView, ReserveCommand

IdempotencyKey = Annotated[
    str,
    HeaderParameter(name="Idempotency-Key", required=True, min_length=1, max_length=200,
              description="Required. The same key with the same body replays the first answer; "
                          "with a different body it is 422."),
]


def _command(actor: str, data: ReserveIn, idempotency_key: str | None) -> ReserveCommand:
    lines = tuple(
        LineInput(line.destination_country, line.operator_id, line.consignee_id, line.chip,
                  line.quantity, line.tpp, line.license_id)
        for line in data.lines
    )
    return ReserveCommand(actor, lines, data.hold_seconds, idempotency_key)


def _out(view: ReservationView) -> ReservationOut:
    return to_struct(view.to_dict(), ReservationOut)


_reserve_body = strict_body(ReserveIn, required_headers=("Idempotency-Key",))


async def _reserve_checks(request: Request) -> None:
    """The role, then the body: a guard's answer first (403 before 422), but checked
    here, not by a guard, on the hottest route (Litestar copies the route handler
    object for every guard call)."""
    require_role(principal_of(request), (ADMIN, VENDOR))
    await _reserve_body(request)


class ReservationController(Controller):
    path = "/v1"
    tags = ["reservations"]

    @post("/reservations", status_code=HTTP_201_CREATED, before_request=_reserve_checks,
          responses=problem_responses(403, 409, 413, 422))
    async def reserve(
        self, request: Request, services: ServicesDep, data: Annotated[ReserveIn, body("reserve")],
        idempotency_key: IdempotencyKey,
    ) -> ReservationOut:
        """Hold quota for every line, or for none (409 naming each violated cap)."""
        actor = principal_of(request).key_id
        outcome = await services.writes.reserve(_command(actor, data, idempotency_key))
        if outcome.reservation is None:
            raise QuotaExceeded(outcome.violations)
        return _out(outcome.reservation)

    @post("/reservations/{reservation_id:str}/commit", guards=[allow(ADMIN, VENDOR)],
          status_code=HTTP_200_OK, responses=problem_responses(403, 404, 409))
    async def commit(
        self, request: Request, services: ServicesDep, reservation_id: FromPath[str]
    ) -> ReservationOut:
        """Commit a live hold (shipped). Repeating a done commit answers the same body."""
        principal = principal_of(request)
        require_owner(principal, (await self._find(services, reservation_id)).owner)
        return _out(await services.writes.commit(reservation_id, principal.key_id))

    @post("/reservations/{reservation_id:str}/release", guards=[allow(ADMIN, VENDOR)],
          status_code=HTTP_200_OK, responses=problem_responses(403, 404, 409))
    async def release(
        self, request: Request, services: ServicesDep, reservation_id: FromPath[str]
    ) -> ReservationOut:
        """Give a live hold back. Repeating a done release answers the same body."""
        principal = principal_of(request)
        require_owner(principal, (await self._find(services, reservation_id)).owner)
        return _out(await services.writes.release(reservation_id, principal.key_id))

    @post("/reservations/{reservation_id:str}/reverse", guards=[allow(ADMIN)],
          status_code=HTTP_200_OK, before_request=strict_body(ReverseIn),
          responses=problem_responses(403, 404, 409, 422))
    async def reverse(
        self, request: Request, services: ServicesDep, reservation_id: FromPath[str],
        data: Annotated[ReverseIn, body("reverse")],
    ) -> ReservationOut:
        """Correct a committed reservation: `reversal` entries give its TPP back to every
        bucket it drew on (nothing is edited). Admins only; repeating it answers the same
        body and writes nothing more. 409 unless the reservation is committed."""
        await self._find(services, reservation_id)
        actor = principal_of(request).key_id
        return _out(await services.writes.reverse(reservation_id, actor, data.reason))

    @get("/reservations", guards=[allow(ADMIN, AUDITOR, VENDOR)],
         responses=problem_responses(403, 422))
    async def list_reservations(
        self,
        request: Request,
        services: ServicesDep,
        status: Annotated[str | None, QueryParameter(
            description="held | committed | released | expired (as a single GET reads it)"
        )] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=400)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    ) -> ReservationsOut:
        """Reservations oldest first, by creation time then id, each as the single GET
        shows it; `since` <= created_at <= `until`. A vendor lists its own; admins and
        auditors all. Pass `next_cursor` back as `cursor`; null means the end."""
        principal = principal_of(request)
        filt = ReservationFilter(
            owner=principal.key_id if principal.role == VENDOR else None,
            status=status, since=utc_time(since, "since"), until=utc_time(until, "until"),
        )
        listing = Listing(services.reader.engine, services.ledger.clock.now)
        page: Page = await anyio.to_thread.run_sync(listing.reservations, filt, cursor, limit)
        return to_struct({"items": page.items, "next_cursor": page.next_cursor},
                         ReservationsOut)

    @get("/reservations/{reservation_id:str}", guards=[allow(ADMIN, AUDITOR, VENDOR)],
         responses=problem_responses(403, 404))
    async def get_reservation(
        self, request: Request, services: ServicesDep, reservation_id: FromPath[str]
    ) -> ReservationOut:
        """A reservation with its lines; a hold past its time reads `expired`."""
        view = await self._find(services, reservation_id)
        require_owner(principal_of(request), view.owner)
        return _out(view)

    @post("/evaluate", guards=[allow(ADMIN, VENDOR, AUDITOR)], status_code=HTTP_200_OK,
          before_request=strict_body(ReserveIn), responses=problem_responses(403, 413, 422))
    async def evaluate(
        self, request: Request, services: ServicesDep, data: Annotated[ReserveIn, body("reserve")]
    ) -> EvaluateOut:
        """Decide a reservation body against current balances; holds and writes nothing."""
        cmd = _command(principal_of(request).key_id, data, None)
        _lines, decision = await anyio.to_thread.run_sync(services.ledger.decide, cmd)
        return EvaluateOut(
            allowed=decision.allowed,
            rule_set=decision.rule_set,
            rule_set_version=decision.rule_set_version,
            lines=[
                DecidedLineOut(
                    line=d.line, path=d.path, tpp=d.tpp,
                    draws=[DrawOut(w.bucket.kind, w.bucket.key, w.bucket.period, w.tpp, w.cap)
                           for w in d.draws],
                )
                for d in decision.lines
            ],
            violations=[ViolationOut(**asdict(v)) for v in decision.violations],
        )

    @staticmethod
    async def _find(services: Services, reservation_id: str) -> ReservationView:
        if not ID_PATTERN.match(reservation_id):
            raise NotFound(f"no reservation {reservation_id!r}")
        view: ReservationView = await anyio.to_thread.run_sync(
            services.ledger.get_reservation, reservation_id
        )
        return view
