"""Reference data: operators, consignees, licences (admin writes, every role reads);
the chip catalog and the rule set in force."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, get, put
from litestar.params import FromPath, JSONBody

from api.auth import ADMIN, EVERYONE, allow
from api.schemas import (
    ChipOut,
    ConsigneeIn,
    ConsigneeOut,
    LicenseIn,
    LicenseOut,
    OperatorIn,
    OperatorOut,
    Uveu,
    VeuOut,
    to_struct,
)
from api.services import Services, ServicesDep
from api.wire import problem_responses, strict_body
from ledger.errors import NotFound
from ledger.reference import ID_PATTERN, ConsigneeInput, LicenseInput, OperatorInput
from ledger.store.models import Consignee, License, Operator


async def _read(services: Services, model: type[Any], ident: str) -> dict[str, Any]:
    if not ID_PATTERN.match(ident):
        raise NotFound(f"no {model.__name__.lower()} {ident!r}")  # such an id cannot exist
    row: dict[str, Any] = await anyio.to_thread.run_sync(
        services.ledger.get_reference, model, ident
    )
    return row


def _operator_out(row: dict[str, Any]) -> OperatorOut:
    veu = None if row["veu_type"] is None else VeuOut(row["veu_type"], row["veu_country"])
    return OperatorOut(
        id=row["id"], name=row["name"], hq_country=row["hq_country"], veu=veu,
        footprint=dict(row["footprint"] or {}), updated_at=row["updated_at"],
    )


class ReferenceController(Controller):
    path = "/v1"
    tags = ["reference data"]

    @put("/operators/{operator_id:str}", guards=[allow(ADMIN)],
         before_request=strict_body(OperatorIn), responses=problem_responses(403, 413, 422))
    async def put_operator(
        self, services: ServicesDep, operator_id: FromPath[str], data: JSONBody[OperatorIn]
    ) -> OperatorOut:
        """Create or replace an operator (idempotent)."""
        veu_type = veu_country = None
        if data.veu is not None:
            veu_type = "UVEU" if isinstance(data.veu, Uveu) else "NVEU"
            veu_country = getattr(data.veu, "country", None)
        await services.writes.put_operator(OperatorInput(
            operator_id, data.name, data.hq_country, veu_type, veu_country,
            dict(data.footprint) if data.footprint is not None else None,
        ))
        services.headroom.reference_changed()
        return _operator_out(await _read(services, Operator, operator_id))

    @get("/operators/{operator_id:str}", guards=[allow(*EVERYONE)],
         responses=problem_responses(403, 404))
    async def get_operator(self, services: ServicesDep, operator_id: FromPath[str]) -> OperatorOut:
        return _operator_out(await _read(services, Operator, operator_id))

    @put("/consignees/{consignee_id:str}", guards=[allow(ADMIN)],
         before_request=strict_body(ConsigneeIn), responses=problem_responses(403, 413, 422))
    async def put_consignee(
        self, services: ServicesDep, consignee_id: FromPath[str], data: JSONBody[ConsigneeIn]
    ) -> ConsigneeOut:
        """Create or replace an ultimate consignee (idempotent)."""
        await services.writes.put_consignee(ConsigneeInput(
            consignee_id, data.name, data.country, data.operator_id, data.group_id
        ))
        services.headroom.reference_changed()
        return to_struct(await _read(services, Consignee, consignee_id), ConsigneeOut)

    @get("/consignees/{consignee_id:str}", guards=[allow(*EVERYONE)],
         responses=problem_responses(403, 404))
    async def get_consignee(
        self, services: ServicesDep, consignee_id: FromPath[str]
    ) -> ConsigneeOut:
        return to_struct(await _read(services, Consignee, consignee_id), ConsigneeOut)

    @put("/licenses/{license_id:str}", guards=[allow(ADMIN)],
         before_request=strict_body(LicenseIn), responses=problem_responses(403, 413, 422))
    async def put_license(
        self, services: ServicesDep, license_id: FromPath[str], data: JSONBody[LicenseIn]
    ) -> LicenseOut:
        """Create or replace an export licence (idempotent)."""
        await services.writes.put_license(LicenseInput(
            license_id, data.country, data.tpp, data.valid_from, data.valid_to, data.consignee_id
        ))
        services.headroom.reference_changed()
        return to_struct(await _read(services, License, license_id), LicenseOut)

    @get("/licenses/{license_id:str}", guards=[allow(*EVERYONE)],
         responses=problem_responses(403, 404))
    async def get_license(self, services: ServicesDep, license_id: FromPath[str]) -> LicenseOut:
        return to_struct(await _read(services, License, license_id), LicenseOut)

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
