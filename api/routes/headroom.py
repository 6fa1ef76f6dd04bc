"""Headroom: every bucket that applies to a query, with what is left of each."""

from __future__ import annotations

import anyio.to_thread
from litestar import Request, get
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromQuery

from api.auth import EVERYONE, OPERATOR, operator_scope, principal_of, require_role
from api.schemas import HeadroomOut, to_struct
from api.services import Services
from api.wire import problem_responses
from ledger.errors import NotFound
from ledger.store.models import Consignee


# The hottest read: no route guard (Litestar copies the handler object for each guard
# call) and no injected dependency; the role check is the guard's, made here first.
@get("/v1/headroom", tags=["headroom"], responses=problem_responses(403, 422))
async def headroom(
    request: Request,
    country: FromQuery[str],
    operator_id: FromQuery[str | None] = None,
    consignee_id: FromQuery[str | None] = None,
) -> HeadroomOut:
    """Buckets for `country` (and the operator / consignee), unused ones at full cap.

    Served from the headroom cache when it is provably current (see api.cache),
    else from the database; an operator key is held to its own operator.
    """
    principal = principal_of(request)
    require_role(principal, EVERYONE)
    services: Services = request.app.state.services
    operator_id = operator_scope(principal, operator_id)
    if principal.role == OPERATOR and consignee_id is not None:
        # An LPP bucket belongs to the consignee: an operator key reads its own only.
        owner = await anyio.to_thread.run_sync(_consignee_operator, services, consignee_id)
        if owner != principal.operator_id:
            raise PermissionDeniedException(
                f"this key reads consignees of operator {principal.operator_id!r} only")
    at = services.ledger.clock.now()
    answer = await services.headroom.answer(country, operator_id, consignee_id, at)
    return to_struct({**answer, "at": at}, HeadroomOut)


def _consignee_operator(services: Services, consignee_id: str) -> str | None:
    try:
        row = services.ledger.get_reference(Consignee, consignee_id)
    except NotFound:
        return None
    return row["operator_id"]
