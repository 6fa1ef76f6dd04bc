"""Batch reservations: up to 1,000 reservations in one request, each with its own
Idempotency-Key and its own answer (one denied reservation fails only itself)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, post
from litestar.status_codes import HTTP_200_OK
from msgspec import Meta, Struct

from api.auth import ADMIN, VENDOR, allow, principal_of
from api.examples import body
from api.problems import QuotaExceeded, handle_exception
from api.routes.reservations import _command, _out
from api.schemas import LineIn, ProblemOut, ReservationOut, ReserveIn, Strict
from api.services import ServicesDep
from api.wire import problem_responses, strict_body
from ledger.views import DEFAULT_HOLD_SECONDS, ReserveOutcome

MAX_BATCH = 1000


class BatchItemIn(Strict):
    idempotency_key: Annotated[str, Meta(min_length=1, max_length=200)]
    lines: Annotated[list[LineIn], Meta(min_length=1, max_length=1000)]
    hold_seconds: Annotated[int, Meta(ge=1, le=30 * 86400)] = DEFAULT_HOLD_SECONDS


class BatchIn(Strict):
    reservations: Annotated[list[BatchItemIn], Meta(min_length=1, max_length=MAX_BATCH)]


class BatchItemOut(Struct, omit_defaults=True):
    index: int
    status: int  # 201 held | 409 denied | 422 invalid | 503 unavailable ...
    reservation: ReservationOut | None = None
    problem: ProblemOut | None = None


class BatchOut(Struct):
    results: list[BatchItemOut]


def _item(request: Request[Any, Any, Any], index: int, result: Any) -> BatchItemOut:
    if isinstance(result, ReserveOutcome):
        if result.reservation is not None:
            return BatchItemOut(index, 201, reservation=_out(result.reservation))
        result = QuotaExceeded(result.violations)
    response = handle_exception(request, result)
    return BatchItemOut(index, response.status_code or 500, problem=response.content)


@post("/v1/reservations:batch", guards=[allow(ADMIN, VENDOR)], status_code=HTTP_200_OK,
      before_request=strict_body(BatchIn), responses=problem_responses(403, 413, 422),
      tags=["reservations"])
async def reserve_batch(request: Request[Any, Any, Any], services: ServicesDep,
                        data: Annotated[BatchIn, body("batch")]) -> BatchOut:
    """Reserve many orders at once. The answer lists, in order, each reservation's own
    status and body: 201 with the reservation, or the problem (409, 422, ...) that
    stopped it. Replays of an item's Idempotency-Key answer as the first time."""
    actor = principal_of(request).key_id
    commands = [
        _command(actor, ReserveIn(lines=item.lines, hold_seconds=item.hold_seconds),
                 item.idempotency_key)
        for item in data.reservations
    ]
    results: list[Any] = await services.writes.reserve_many(commands)
    return BatchOut([_item(request, i, r) for i, r in enumerate(results)])
