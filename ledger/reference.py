"""Reference data: operators, consignees, licences; and turning request lines into
policy `LineRequest`s (which is where unknown references become 422s)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.countries import is_known_country
from ledger.errors import InvalidInput
from ledger.policy.types import ConsigneeInfo, LicenseInfo, LineRequest, OperatorInfo
from ledger.store.arrays import among, dialect_of
from ledger.store.models import Consignee, License, Operator
from ledger.views import LineInput

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
VEU_TYPES = ("UVEU", "NVEU")


def check_id(value: str, field: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InvalidInput(
            f"{field} must be 1-64 characters of letters, digits, '.', '_', ':' or '-'",
            field=field,
        )
    return value


def check_country(code: str, field: str) -> str:
    if not isinstance(code, str) or not is_known_country(code):
        raise InvalidInput(f"{field}: {code!r} is not an ISO 3166-1 alpha-2 code", field=field)
    return code


def check_optional_country(code: str | None, field: str) -> str | None:
    return None if code is None else check_country(code, field)


# Parties' identity (API v1.1): bounds on what one PUT may carry.
MAX_ADDRESS = 500
MAX_OFFICERS = 50
MAX_OWNERS = 50
MAX_PARTY_NAME = 200  # an officer's or an owner's name
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_line(value: Any, field: str, max_length: int) -> str:
    """One line of text as stored: trimmed, non-empty, no control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    text = value.strip()
    if not text:
        raise InvalidInput(f"{field} may not be empty", field=field)
    if len(text) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters", field=field)
    if _CONTROL.search(text):
        raise InvalidInput(f"{field} must be one line without control characters", field=field)
    return text


@dataclass(frozen=True)
class Owner:
    """A direct owner of a party and its share, in whole percent."""

    name: str
    percent: int


@dataclass(frozen=True)
class Identity:
    """What identifies a party on shipping documents and in screening (stored as sent,
    trimmed): one address line, the names of its officers, its direct owners."""

    address: str | None = None
    officers: tuple[str, ...] = ()
    owners: tuple[Owner, ...] = ()

    def values(self) -> dict[str, Any]:
        """The stored columns, validated and trimmed (InvalidInput naming the field)."""
        address = None if self.address is None else check_line(
            self.address, "address", MAX_ADDRESS)
        if not isinstance(self.officers, (list, tuple)) or len(self.officers) > MAX_OFFICERS:
            raise InvalidInput(f"officers is a list of at most {MAX_OFFICERS} names",
                               field="officers")
        officers = [check_line(name, f"officers[{i}]", MAX_PARTY_NAME)
                    for i, name in enumerate(self.officers)]
        if not isinstance(self.owners, (list, tuple)) or len(self.owners) > MAX_OWNERS:
            raise InvalidInput(f"owners is a list of at most {MAX_OWNERS} owners",
                               field="owners")
        owners: list[dict[str, Any]] = []
        total = 0
        for i, owner in enumerate(self.owners):
            name = check_line(owner.name, f"owners[{i}].name", MAX_PARTY_NAME)
            percent = owner.percent
            if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
                raise InvalidInput("an owner's percent is a whole number from 1 to 100",
                                   field=f"owners[{i}].percent")
            owners.append({"name": name, "percent": percent})
            total += percent
        if total > 100:
            raise InvalidInput(f"the owners' percents add up to {total}, more than 100",
                               field="owners")
        return {"address": address, "officers": officers, "owners": owners}


def check_tpp(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(f"{field} must be a positive integer", field=field)
    return value


@dataclass(frozen=True)
class OperatorInput:
    id: str
    name: str
    hq_country: str
    veu_type: str | None = None
    veu_country: str | None = None
    footprint: dict[str, int] | None = None
    parent_country: str | None = None  # its ultimate parent's HQ; None: its own parent
    identity: Identity = Identity()

    def validate(self) -> None:
        check_id(self.id, "operator_id")
        check_country(self.hq_country, "hq_country")
        check_optional_country(self.parent_country, "parent_country")
        if self.veu_type is not None and self.veu_type not in VEU_TYPES:
            raise InvalidInput("veu.type must be UVEU or NVEU", field="veu.type")
        if self.veu_type == "NVEU":
            if self.veu_country is None:
                raise InvalidInput("an NVEU names its country", field="veu.country")
            check_country(self.veu_country, "veu.country")
        elif self.veu_country is not None:
            raise InvalidInput("only an NVEU names a country", field="veu.country")
        for country, tpp in (self.footprint or {}).items():
            check_country(country, f"footprint.{country}")
            if isinstance(tpp, bool) or not isinstance(tpp, int) or tpp < 0:
                raise InvalidInput(
                    "footprint values are non-negative integers", field=f"footprint.{country}"
                )
        self.identity.values()

    def row(self) -> dict[str, Any]:
        """The stored row's values (validate first)."""
        return {
            "id": self.id,
            "name": self.name,
            "hq_country": self.hq_country,
            "veu_type": self.veu_type,
            "veu_country": self.veu_country,
            "footprint": dict(self.footprint or {}),
            "parent_country": self.parent_country,
            **self.identity.values(),
        }


@dataclass(frozen=True)
class ConsigneeInput:
    id: str
    name: str
    country: str
    operator_id: str | None = None
    group_id: str | None = None
    hq_country: str | None = None  # None: headquartered where it is located
    parent_country: str | None = None  # its ultimate parent's HQ; None: same as its hq
    identity: Identity = Identity()

    def validate(self) -> None:
        check_id(self.id, "consignee_id")
        check_country(self.country, "country")
        if self.operator_id is not None:
            check_id(self.operator_id, "operator_id")
        if self.group_id is not None:
            check_id(self.group_id, "group_id")
        check_optional_country(self.hq_country, "hq_country")
        check_optional_country(self.parent_country, "parent_country")
        self.identity.values()

    def row(self) -> dict[str, Any]:
        """The stored row's values (validate first)."""
        return {
            "id": self.id,
            "name": self.name,
            "country": self.country,
            "operator_id": self.operator_id,
            "group_id": self.group_id,
            "hq_country": self.hq_country,
            "parent_country": self.parent_country,
            **self.identity.values(),
        }


@dataclass(frozen=True)
class LicenseInput:
    id: str
    country: str
    tpp: int
    valid_from: date
    valid_to: date
    consignee_id: str | None = None

    def validate(self) -> None:
        check_id(self.id, "license_id")
        check_country(self.country, "country")
        check_tpp(self.tpp, "tpp")
        if self.consignee_id is not None:
            check_id(self.consignee_id, "consignee_id")
        if self.valid_to < self.valid_from:
            raise InvalidInput("valid_to is before valid_from", field="valid_to")


# The columns each of the three functions below reads: a resolver loads only these
# (not a consignee's officers and owners, JSON parsed per row for nothing).
INFO_COLUMNS: dict[str, tuple[str, ...]] = {
    "operator": ("id", "hq_country", "veu_type", "veu_country", "footprint", "parent_country"),
    "consignee": ("id", "country", "operator_id", "group_id", "hq_country", "parent_country"),
    "license": ("id", "country", "consignee_id", "tpp", "valid_from", "valid_to"),
}


def operator_info(row: Any) -> OperatorInfo:
    return OperatorInfo(
        id=row.id,
        hq_country=row.hq_country,
        veu_type=row.veu_type,
        veu_country=row.veu_country,
        footprint=dict(row.footprint or {}),
        parent_country=row.parent_country,
    )


def consignee_info(row: Any) -> ConsigneeInfo:
    return ConsigneeInfo(
        id=row.id,
        country=row.country,
        operator_id=row.operator_id,
        group_id=row.group_id,
        hq_country=row.hq_country,
        parent_country=row.parent_country,
    )


def license_info(row: Any) -> LicenseInfo:
    return LicenseInfo(row.id, row.country, row.consignee_id, row.tpp, row.valid_from, row.valid_to)


def upsert(session: Session, model: type[Any], values: dict[str, Any], now: datetime) -> None:
    """Create-or-replace one reference row (PUT semantics)."""
    row = session.get(model, values["id"])
    if row is None:
        session.add(model(**values, updated_at=now))
    else:
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = now


class LineResolver:
    """Resolves request lines against reference data, caching rows for one transaction."""

    def __init__(self, session: Session, chip_tpp: Any) -> None:
        self._session = session
        self._chip_tpp = chip_tpp
        self._cache: dict[tuple[type[Any], str], Any] = {}

    def _get(self, model: type[Any], ident: str) -> Any:
        key = (model, ident)
        if key not in self._cache:
            self.prefetch_ids(model, {ident})
        return self._cache[key]

    def prefetch(self, lines: Sequence[LineInput]) -> None:
        """Loads every row these lines name in one statement per table."""
        wanted: tuple[tuple[type[Any], set[Any]], ...] = (
            (Operator, {line.operator_id for line in lines}),
            (Consignee, {line.consignee_id for line in lines}),
            (License, {line.license_id for line in lines}),
        )
        for model, named in wanted:
            self.prefetch_ids(model, named)

    def prefetch_ids(self, model: type[Any], named: set[Any]) -> None:
        # Core rows, not ORM instances: read-only here, and much cheaper to build.
        ids = {i for i in named if isinstance(i, str) and (model, i) not in self._cache}
        if not ids:
            return
        table: Any = model.__table__
        columns = [table.c[name] for name in INFO_COLUMNS[table.name]]
        rows = self._session.execute(sa.select(*columns).where(
            among(dialect_of(self._session), table.c.id, sorted(ids)))).all()
        found: dict[str, Any] = {row.id: row for row in rows}
        for i in ids:
            self._cache[(model, i)] = found.get(i)

    def resolve(self, lines: Sequence[LineInput]) -> list[LineRequest]:
        if not lines:
            raise InvalidInput("a reservation needs at least one line", field="lines")
        return [self._resolve_one(i, line) for i, line in enumerate(lines)]

    def _resolve_one(self, i: int, line: LineInput) -> LineRequest:
        f = f"lines[{i}]"
        check_country(line.destination_country, f"{f}.destination_country")
        tpp = self._line_tpp(f, line)
        operator = self._get(Operator, line.operator_id)
        if operator is None:
            raise InvalidInput(f"unknown operator {line.operator_id!r}", field=f"{f}.operator_id")
        consignee = self._get(Consignee, line.consignee_id)
        if consignee is None:
            raise InvalidInput(
                f"unknown consignee {line.consignee_id!r}", field=f"{f}.consignee_id"
            )
        if consignee.operator_id != line.operator_id:
            # A line draws the operator's footprint and the consignee's buckets: both must
            # be one party's, or one operator's books would show another's consignee.
            owner = (f"operator {consignee.operator_id!r}" if consignee.operator_id
                     else "no operator")
            raise InvalidInput(
                f"consignee {consignee.id!r} belongs to {owner}, "
                f"not to operator {line.operator_id!r}",
                field=f"{f}.consignee_id",
            )
        if consignee.country != line.destination_country:
            raise InvalidInput(
                f"consignee {consignee.id!r} is located in {consignee.country}, "
                f"not in {line.destination_country}",
                field=f"{f}.consignee_id",
            )
        license_ = None
        if line.license_id is not None:
            row = self._get(License, line.license_id)
            if row is None:
                raise InvalidInput(
                    f"unknown licence {line.license_id!r}", field=f"{f}.license_id"
                )
            license_ = license_info(row)
        return LineRequest(
            destination_country=line.destination_country,
            operator=operator_info(operator),
            consignee=consignee_info(consignee),
            tpp=tpp,
            license=license_,
            chip=line.chip,  # the policy tests chip attributes (USC-7)
        )

    def _line_tpp(self, f: str, line: LineInput) -> int:
        if line.chip is not None and line.tpp is not None:
            raise InvalidInput("give chip and quantity, or tpp, not both", field=f"{f}.tpp")
        if line.tpp is not None:
            return check_tpp(line.tpp, f"{f}.tpp")
        if line.chip is None:
            raise InvalidInput("give chip and quantity, or tpp", field=f"{f}.chip")
        per_chip = self._chip_tpp(line.chip)
        if per_chip is None:
            raise InvalidInput(f"unknown chip {line.chip!r}", field=f"{f}.chip")
        quantity = check_tpp(line.quantity, f"{f}.quantity")
        return int(per_chip) * quantity
