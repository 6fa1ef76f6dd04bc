"""Reference data: operators, consignees, licences (admin writes, every role reads);
the chip catalog and the rule set in force.

An operator key reads only its own operator, the consignees registered under it
and the licences naming those consignees; any other record is 403 (whether or
not it exists). Lists are pages in id order (see ledger.listing).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, get, put
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, QueryParameter

from api.auth import ADMIN, EVERYONE, OPERATOR, allow, principal_of
from api.examples import body
from api.schemas import (
    ChipOut,
    ConsigneeIn,
    ConsigneeOut,
    ConsigneesOut,
    LicenseIn,
    LicenseOut,
    LicensesOut,
    OperatorIn,
    OperatorOut,
    OperatorsOut,
    OwnerOut,
    Uveu,
    VeuOut,
    to_struct,
)
from api.services import Services, ServicesDep
from api.wire import problem_responses, strict_body
from ledger.errors import NotFound
from ledger.listing import DEFAULT_PAGE, MAX_PAGE, Listing, Page
from ledger.reference import (
    ID_PATTERN,
    ConsigneeInput,
    Identity,
    LicenseInput,
    OperatorInput,
    Owner,
)
from ledger.store.models import Consignee, License, Operator

Cursor = Annotated[str | None, QueryParameter(
    max_length=400, description="`next_cursor` of the previous page; omit for the first")]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="items per page")]


async def _read(services: Services, model: type[Any], ident: str) -> dict[str, Any]:
    if not ID_PATTERN.match(ident):
        raise NotFound(f"no {model.__name__.lower()} {ident!r}")  # such an id cannot exist
    row: dict[str, Any] = await anyio.to_thread.run_sync(
        services.ledger.get_reference, model, ident
    )
    return row


def _own_operator(request: Request[Any, Any, Any]) -> str | None:
    """The operator whose records alone this key may read (None: every record)."""
    principal = principal_of(request)
    return principal.operator_id if principal.role == OPERATOR else None


async def _read_scoped(
    request: Request[Any, Any, Any], services: Services, kind: str, ident: str
) -> dict[str, Any]:
    if not ID_PATTERN.match(ident):
        raise NotFound(f"no {kind[:-1]} {ident!r}")  # such an id cannot exist
    own = _own_operator(request)
    listing = Listing(services.reader.engine, services.ledger.clock.now)
    row = await anyio.to_thread.run_sync(listing.reference, kind, ident, own)
    if row is None:
        raise PermissionDeniedException(
            f"this key reads the records of operator {own!r} only")
    return row


async def _page(
    request: Request[Any, Any, Any], services: Services, kind: str, cursor: str | None,
    limit: int,
) -> Page:
    listing = Listing(services.reader.engine, services.ledger.clock.now)
    page: Page = await anyio.to_thread.run_sync(
        listing.references, kind, _own_operator(request), cursor, limit)
    return page


def _identity(data: OperatorIn | ConsigneeIn) -> Identity:
    return Identity(
        address=data.address,
        officers=tuple(data.officers or ()),
        owners=tuple(Owner(o.name, o.percent) for o in data.owners or ()),
    )


def _operator_out(row: dict[str, Any]) -> OperatorOut:
    veu = None if row["veu_type"] is None else VeuOut(row["veu_type"], row["veu_country"])
    return OperatorOut(
        id=row["id"], name=row["name"], hq_country=row["hq_country"], veu=veu,
        footprint=dict(row["footprint"] or {}), updated_at=row["updated_at"],
        parent_country=row["parent_country"], address=row["address"],
        officers=list(row["officers"] or []),
        owners=[OwnerOut(o["name"], o["percent"]) for o in row["owners"] or []],
    )


class ReferenceController(Controller):
    path = "/v1"
    tags = ["reference data"]

    @put("/operators/{operator_id:str}", guards=[allow(ADMIN)],
         before_request=strict_body(OperatorIn), responses=problem_responses(403, 413, 422))
    async def put_operator(
        self, services: ServicesDep, operator_id: FromPath[str],
        data: Annotated[OperatorIn, body("operator")],
    ) -> OperatorOut:
        """Create or replace an operator (idempotent)."""
        veu_type = veu_country = None
        if data.veu is not None:
            veu_type = "UVEU" if isinstance(data.veu, Uveu) else "NVEU"
            veu_country = getattr(data.veu, "country", None)
        await services.writes.put_operator(OperatorInput(
            operator_id, data.name, data.hq_country, veu_type, veu_country,
            dict(data.footprint) if data.footprint is not None else None,
            data.parent_country, _identity(data),
        ))
        services.headroom.reference_changed()
        return _operator_out(await _read(services, Operator, operator_id))

    @get("/operators/{operator_id:str}", guards=[allow(*EVERYONE)],
         responses=problem_responses(403, 404))
    async def get_operator(
        self, request: Request, services: ServicesDep, operator_id: FromPath[str]
    ) -> OperatorOut:
        """An operator; an operator key reads its own only."""
        return _operator_out(await _read_scoped(request, services, "operators", operator_id))

    @get("/operators", guards=[allow(*EVERYONE)], responses=problem_responses(403, 422))
    async def list_operators(
        self, request: Request, services: ServicesDep, cursor: Cursor = None,
        limit: Limit = DEFAULT_PAGE,
    ) -> OperatorsOut:
        """Operators by id, page by page (an operator key: its own alone).

        Pass `next_cursor` back as `cursor` for the next page; null means the end.
        """
        page = await _page(request, services, "operators", cursor, limit)
        return OperatorsOut([_operator_out(row) for row in page.items], page.next_cursor)

    @put("/consignees/{consignee_id:str}", guards=[allow(ADMIN)],
         before_request=strict_body(ConsigneeIn), responses=problem_responses(403, 413, 422))
    async def put_consignee(
        self, services: ServicesDep, consignee_id: FromPath[str],
        data: Annotated[ConsigneeIn, body("consignee")],
    ) -> ConsigneeOut:
        """Create or replace an ultimate consignee (idempotent)."""
        await services.writes.put_consignee(ConsigneeInput(
            consignee_id, data.name, data.country, data.operator_id, data.group_id,
            data.hq_country, data.parent_country, _identity(data),
        ))
        services.headroom.reference_changed()
        return to_struct(await _read(services, Consignee, consignee_id), ConsigneeOut)

    @get("/consignees/{consignee_id:str}", guards=[allow(*EVERYONE)],
         responses=problem_responses(403, 404))
    async def get_consignee(
        self, request: Request, services: ServicesDep, consignee_id: FromPath[str]
    ) -> ConsigneeOut:
        """An ultimate consignee; an operator key reads those registered under it only."""
        row = await _read_scoped(request, services, "consignees", consignee_id)
        return to_struct(row, ConsigneeOut)

    @get("/consignees", guards=[allow(*EVERYONE)], responses=problem_responses(403, 422))
    async def list_consignees(
        self, request: Request, services: ServicesDep, cursor: Cursor = None,
        limit: Limit = DEFAULT_PAGE,
    ) -> ConsigneesOut:
        """Consignees by id, page by page (an operator key: those registered under it).

        Pass `next_cursor` back as `cursor` for the next page; null means the end.
        """
        page = await _page(request, services, "consignees", cursor, limit)
        return to_struct({"items": page.items, "next_cursor": page.next_cursor}, ConsigneesOut)

    @put("/licenses/{license_id:str}", guards=[allow(ADMIN)],
         before_request=strict_body(LicenseIn), responses=problem_responses(403, 413, 422))
    async def put_license(
        self, services: ServicesDep, license_id: FromPath[str],
        data: Annotated[LicenseIn, body("license")],
    ) -> LicenseOut:
        """Create or replace an export licence (idempotent)."""
        await services.writes.put_license(LicenseInput(
            license_id, data.country, data.tpp, data.valid_from, data.valid_to, data.consignee_id
        ))
        services.headroom.reference_changed()
        return to_struct(await _read(services, License, license_id), LicenseOut)

    @get("/licenses/{license_id:str}", guards=[allow(*EVERYONE)],
         responses=problem_responses(403, 404))
    async def get_license(
        self, request: Request, services: ServicesDep, license_id: FromPath[str]
    ) -> LicenseOut:
        """A licence; an operator key reads those naming its own consignees only."""
        row = await _read_scoped(request, services, "licenses", license_id)
        return to_struct(row, LicenseOut)

    @get("/licenses", guards=[allow(*EVERYONE)], responses=problem_responses(403, 422))
    async def list_licenses(
        self, request: Request, services: ServicesDep, cursor: Cursor = None,
        limit: Limit = DEFAULT_PAGE,
    ) -> LicensesOut:
        """Licences by id, page by page (an operator key: those naming its consignees).

        Pass `next_cursor` back as `cursor` for the next page; null means the end.
        """
        page = await _page(request, services, "licenses", cursor, limit)
        return to_struct({"items": page.items, "next_cursor": page.next_cursor}, LicensesOut)

    @get("/chips", guards=[allow(*EVERYONE)], responses=problem_responses(403),
         sync_to_thread=False)
    def chips(self, services: ServicesDep) -> list[ChipOut]:
        """The chip catalog of the rule set in force: TPP per package."""
        return [ChipOut(model=c.id, name=c.name, tpp=c.tpp, sure=c.sure)
                for c in services.ledger.rule_set.chips()]

    @get("/policy", guards=[allow(*EVERYONE)], responses=problem_responses(403),
         sync_to_thread=False)
    def policy(self, services: ServicesDep) -> dict[str, Any]:
        """The rule set in force: name, version, effective dates and every number."""
        return services.ledger.rule_set.to_public_dict()
