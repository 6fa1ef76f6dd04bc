"""Reference data for tests, through the service's own PUT operations."""

from __future__ import annotations

from datetime import date

from ledger.reference import ConsigneeInput, LicenseInput, OperatorInput
from ledger.service import Ledger
from ledger.views import LineInput, ReserveCommand

H100 = 15_832


def operator(
    ledger: Ledger,
    op_id: str = "op1",
    hq: str = "US",
    veu: str | None = None,
    veu_country: str | None = None,
    footprint: dict[str, int] | None = None,
) -> str:
    ledger.put_operator(OperatorInput(op_id, op_id, hq, veu, veu_country, footprint))
    return op_id


def consignee(
    ledger: Ledger,
    c_id: str,
    country: str,
    operator_id: str | None = "op1",
    group: str | None = None,
) -> str:
    ledger.put_consignee(ConsigneeInput(c_id, c_id, country, operator_id, group))
    return c_id


def license_(
    ledger: Ledger,
    lic_id: str,
    country: str,
    tpp: int,
    consignee_id: str | None = None,
    valid_from: date = date(2025, 1, 1),
    valid_to: date = date(2027, 12, 31),
) -> str:
    ledger.put_license(LicenseInput(lic_id, country, tpp, valid_from, valid_to, consignee_id))
    return lic_id


def line(
    country: str,
    consignee_id: str,
    *,
    operator_id: str = "op1",
    chip: str | None = None,
    quantity: int | None = None,
    tpp: int | None = None,
    license_id: str | None = None,
) -> LineInput:
    if chip is None and tpp is None:
        chip, quantity = "H100-SXM", (1 if quantity is None else quantity)
    return LineInput(country, operator_id, consignee_id, chip, quantity, tpp, license_id)


def reserve(
    ledger: Ledger,
    *lines: LineInput,
    actor: str = "vendor1",
    key: str | None = None,
    hold_seconds: int = 3600,
):  # type: ignore[no-untyped-def]
    return ledger.reserve(ReserveCommand(actor, tuple(lines), hold_seconds, key))
