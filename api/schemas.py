"""What crosses the wire: request and response schemas (msgspec Structs).

Requests are decoded strictly (see api.bodies): a TPP figure is a JSON
integer, never a float, a string or a boolean. Bounds keep every figure far
inside BIGINT even summed over many reservations.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from ledger.reference import MAX_ADDRESS, MAX_OFFICERS, MAX_OWNERS, MAX_PARTY_NAME
from ledger.views import DEFAULT_HOLD_SECONDS, MAX_HOLD_SECONDS

MAX_LINES = 1000
MAX_TPP = 10**13  # ten trillion TPP: ~600 million H100s, above any real order
MAX_QUANTITY = 10**8

Country = Annotated[str, Meta(pattern="^[A-Z]{2}$", examples=["AE"],
                              description="ISO 3166-1 alpha-2 code")]
Ident = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", max_length=64)]
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
ChipModel = Annotated[str, Meta(min_length=1, max_length=32, examples=["H100-SXM"])]
Tpp = Annotated[int, Meta(ge=1, le=MAX_TPP, description="whole TPP units")]
Quantity = Annotated[int, Meta(ge=1, le=MAX_QUANTITY)]
FootprintTpp = Annotated[int, Meta(ge=0, le=MAX_TPP)]
HoldSeconds = Annotated[int, Meta(ge=1, le=MAX_HOLD_SECONDS)]
# Parties' identity (v1.1); ledger.reference checks the same bounds after trimming.
OneLine = r"^[^\x00-\x1f\x7f]+$"
Address = Annotated[str, Meta(min_length=1, max_length=MAX_ADDRESS, pattern=OneLine,
                              description="one line, as on shipping documents")]
PartyName = Annotated[str, Meta(min_length=1, max_length=MAX_PARTY_NAME, pattern=OneLine)]
Percent = Annotated[int, Meta(ge=1, le=100, description="whole percent")]


class Strict(Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are a 422, not silently ignored."""


# -- reference data -----------------------------------------------------------


class Uveu(Strict, tag_field="type", tag="UVEU"):
    pass


class Nveu(Strict, tag_field="type", tag="NVEU"):
    country: Country


class OwnerIn(Strict):
    name: PartyName
    percent: Percent


Officers = Annotated[list[PartyName], Meta(max_length=MAX_OFFICERS,
                                           description="names of directors / officers")]
Owners = Annotated[list[OwnerIn], Meta(max_length=MAX_OWNERS,
                                       description="direct owners; percents add up to 100 at most")]


class OperatorIn(Strict):
    name: Name
    hq_country: Country
    veu: Uveu | Nveu | None = None
    footprint: dict[Country, FootprintTpp] | None = None
    # v1.1: the country where its ultimate parent is headquartered; null: its own parent
    parent_country: Country | None = None
    address: Address | None = None
    officers: Officers | None = None  # null or absent: none
    owners: Owners | None = None


class VeuOut(Struct):
    type: str
    country: str | None = None


class OwnerOut(Struct):
    name: str
    percent: int


class OperatorOut(Struct):
    id: str
    name: str
    hq_country: str
    veu: VeuOut | None
    footprint: dict[str, int]
    updated_at: datetime
    parent_country: str | None
    address: str | None
    officers: list[str]
    owners: list[OwnerOut]


class ConsigneeIn(Strict):
    name: Name
    country: Country
    operator_id: Ident | None = None
    group_id: Ident | None = None
    # v1.1: headquarters (null: same as `country`); ultimate parent's (null: same as hq)
    hq_country: Country | None = None
    parent_country: Country | None = None
    address: Address | None = None
    officers: Officers | None = None  # null or absent: none
    owners: Owners | None = None


class ConsigneeOut(Struct):
    id: str
    name: str
    country: str
    operator_id: str | None
    group_id: str | None
    updated_at: datetime
    hq_country: str | None
    parent_country: str | None
    address: str | None
    officers: list[str]
    owners: list[OwnerOut]


class LicenseIn(Strict):
    country: Country
    tpp: Tpp
    valid_from: date
    valid_to: date
    consignee_id: Ident | None = None


class LicenseOut(Struct):
    id: str
    country: str
    consignee_id: str | None
    tpp: int
    valid_from: date
    valid_to: date
    updated_at: datetime


class OperatorsOut(Struct):
    items: list[OperatorOut]
    next_cursor: str | None


class ConsigneesOut(Struct):
    items: list[ConsigneeOut]
    next_cursor: str | None


class LicensesOut(Struct):
    items: list[LicenseOut]
    next_cursor: str | None


class ChipOut(Struct):
    model: str
    name: str
    tpp: int
    sure: str


# -- reservations ---------------------------------------------------------------


class LineIn(Strict):
    destination_country: Country
    operator_id: Ident
    consignee_id: Ident
    chip: ChipModel | None = None
    quantity: Quantity | None = None
    tpp: Tpp | None = None
    license_id: Ident | None = None


class ReserveIn(Strict):
    lines: Annotated[list[LineIn], Meta(min_length=1, max_length=MAX_LINES)]
    hold_seconds: HoldSeconds = DEFAULT_HOLD_SECONDS


class ReverseIn(Strict):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class LineOut(Struct):
    line: int
    path: str
    tpp: int
    destination_country: str
    operator_id: str
    consignee_id: str
    chip: str | None
    quantity: int | None
    license_id: str | None


class ReservationOut(Struct):
    id: str
    status: str  # held | committed | released | expired
    owner: str
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None
    reversed_at: datetime | None
    rule_set: str
    rule_set_version: str
    tpp: int
    lines: list[LineOut]


class ReservationsOut(Struct):
    items: list[ReservationOut]
    next_cursor: str | None


class ViolationOut(Struct):
    line: int
    constraint: str  # a bucket kind when a cap binds; tier3 | license_required | ...: a rule
    key: str
    cap: int
    used: int
    requested: int
    rule: str  # the rule-set step that produced it
    reason: str  # one sentence for a person


class DrawOut(Struct):
    kind: str
    key: str
    period: str
    tpp: int
    cap: int | None


class DecidedLineOut(Struct):
    line: int
    path: str | None
    tpp: int
    draws: list[DrawOut]


class EvaluateOut(Struct):
    allowed: bool
    rule_set: str
    rule_set_version: str
    lines: list[DecidedLineOut]
    violations: list[ViolationOut]


# -- headroom, history, audit ---------------------------------------------------------


class BucketOut(Struct):
    kind: str
    key: str
    cap: int
    committed: int
    held: int
    available: int


class HeadroomOut(Struct):
    country: str
    tier: int
    at: datetime
    buckets: list[BucketOut]


class BalanceBucketOut(Struct):
    kind: str
    key: str
    period: str
    cap: int
    committed: int
    held: int
    available: int


class BalancesOut(Struct):
    as_of: datetime
    buckets: list[BalanceBucketOut]


class EntryDrawOut(Struct):
    kind: str
    key: str
    period: str
    tpp: int


class EntryOut(Struct):
    seq: int
    kind: str
    reservation_id: str
    line_no: int
    tpp: int
    at: datetime
    recorded_at: datetime
    country: str
    operator_id: str
    consignee_id: str
    path: str
    draws: list[EntryDrawOut]
    actor: str
    rule_set: str
    rule_set_version: str
    note: str | None
    hash: str
    prev_hash: str


class EntriesOut(Struct):
    items: list[EntryOut]
    next_cursor: str | None


class VerifyOut(Struct):
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None
    reason: str | None


class StatusOut(Struct):
    status: str


class ProblemOut(Struct, omit_defaults=True):
    """RFC 9457 problem details, with this service's extensions."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str | None = None
    field: str | None = None
    violations: list[ViolationOut] | None = None
    reservation_status: str | None = None


def to_struct(doc: Any, kind: type[Any]) -> Any:
    """Builds a response Struct from the service's plain data (dicts, dataclasses)."""
    return msgspec.convert(doc, kind, from_attributes=True)
