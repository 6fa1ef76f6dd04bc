"""The shape of decision steps, their conditions, quotas and the UVEU ratios in a rule-set file.

A step is tried in file order: when its conditions hold, its outcome applies
(see `engine`). A quota is a bucket kind with a scope (whose it is), a period
(which stretch of time one bucket covers), a unit and a cap.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from ledger.policy.schema_base import CHIP_ID, Model, Provenance, check_country
from ledger.units import exact

_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")

ChipAttribute = Literal["tpp", "performance_density", "dram_bandwidth_gbs"]
Comparison = Literal["<", "<=", ">", ">=", "=="]
Party = Literal["operator", "consignee"]


class ChipTest(Model):
    """`<attribute> <op> <value>` on the line's chip, compared exactly (value: int or decimal
    string). A line given as raw TPP has no chip: the test does not hold (fail closed)."""

    attribute: ChipAttribute
    op: Comparison
    value: StrictInt | str

    @field_validator("value")
    @classmethod
    def _exact(cls, value: int | str) -> int | str:
        exact(value, "value")
        return value


class Condition(Model):
    """Every given test must hold. Group names refer to [groups]; any of a list matches.

    `party_hq_in`: the headquarters or ultimate parent's headquarters of any of
    `parties` is in a group. `parties_hq_all_in`: those of every party are (and, for
    AIA, `destination_in` says where the chips go).
    """

    destination_in: tuple[str, ...] = ()
    destination_not_in: tuple[str, ...] = ()
    party_hq_in: tuple[str, ...] = ()
    parties_hq_all_in: tuple[str, ...] = ()
    parties: tuple[Party, ...] = ("operator", "consignee")
    veu: Literal["uveu", "nveu", "none"] | None = None  # nveu: validated for the destination
    authorised: str | None = None  # an [entities] name valid on the date covering a party
    chip: tuple[ChipTest, ...] = ()
    chip_class_in: tuple[Literal["3A090.a", "3A090.b", "outside"], ...] = ()

    def is_empty(self) -> bool:
        return self == Condition()


class StepSpec(Model):
    """One decision step: conditions (all of `when`, and one of `any_of` when given) and its
    outcome. `allowed` draws its quotas; if one does not fit, the failure is recorded and
    the next step is tried (or the line is denied with `on_fail = "deny"`).
    `license_required` allows on path `license` when the line's licence covers it and its
    quotas fit, else denies. `prohibited` denies with `constraint`."""

    id: str = Field(min_length=1)
    rule: str = Field(min_length=1)
    title: str = ""
    when: Condition = Condition()
    any_of: tuple[Condition, ...] = ()
    outcome: Literal["allowed", "license_required", "prohibited"]
    path: Literal["tier1", "uveu", "nveu", "lpp"] | None = None
    quotas: tuple[str, ...] = ()
    ratios: Literal["uveu"] | None = None
    on_fail: Literal["next", "deny"] = "next"
    constraint: Literal["prohibited", "tier3", "license_required"] | None = None
    reason: str = Field(min_length=1)

    @model_validator(mode="after")
    def _outcome_fields(self) -> StepSpec:
        allowed = self.outcome == "allowed"
        if allowed != (self.path is not None):
            raise ValueError("path is given exactly when the outcome is allowed")
        if self.outcome == "prohibited" and self.quotas:
            raise ValueError("a prohibited step draws no quotas")
        if self.ratios is not None and not allowed:
            raise ValueError("ratios belong to an allowed step")
        if self.constraint is not None and self.outcome != "prohibited":
            raise ValueError("constraint belongs to a prohibited step")
        return self

    @property
    def unconditional(self) -> bool:
        return self.when.is_empty() and not self.any_of

    @property
    def denial_constraint(self) -> str:
        return self.constraint or "prohibited"


class ScheduleStep(Model):
    """A cap in force from a quarter ("2026Q1") or a date until the next step."""

    from_: str | date = Field(alias="from")
    cap: StrictInt = Field(ge=0)

    @field_validator("from_")
    @classmethod
    def _quarter(cls, value: str | date) -> str | date:
        if isinstance(value, str) and not _QUARTER.match(value):
            raise ValueError(f"{value!r} is not a quarter like 2026Q1 (or give a date)")
        return value

    @property
    def start(self) -> date:
        if isinstance(self.from_, date):
            return self.from_
        match = _QUARTER.match(self.from_)
        assert match is not None  # validated above
        return date(int(match.group(1)), 3 * int(match.group(2)) - 2, 1)

    @property
    def label(self) -> str:
        return self.from_ if isinstance(self.from_, str) else self.from_.isoformat()


class Window(Model):
    from_: date = Field(alias="from")
    to: date  # inclusive

    @model_validator(mode="after")
    def _order(self) -> Window:
        if self.to < self.from_:
            raise ValueError("to is before from")
        return self


class SubQuotaSpec(Model):
    """An entity's share inside the quota's bucket: the entity's lines draw both."""

    entity: str
    cap: StrictInt = Field(ge=0)
    provenance: Provenance


Unit = Literal["tpp"]


class EquivalentsUnit(Model):
    """Caps counted in equivalents of a reference chip: a cap of N is N x its TPP."""

    equivalents_of: str

    @field_validator("equivalents_of")
    @classmethod
    def _chip(cls, value: str) -> str:
        if not CHIP_ID.match(value):
            raise ValueError(f"{value!r} is not a chip id")
        return value


class QuotaSpec(Model):
    """One quota: bucket kind, scope, period, unit and cap (a number, or a schedule)."""

    kind: str = Field(min_length=1)
    rule: str = Field(min_length=1)
    title: str = Field(min_length=1)
    scope: Literal["consignee", "consignee_group", "operator_country", "country", "entity"]
    entity: str | None = None  # for scope = "entity"
    period: Literal["calendar_year", "quarter", "window", "none"]
    window: Window | None = None
    unit: Unit | EquivalentsUnit = "tpp"
    cap: StrictInt | None = Field(default=None, ge=0)
    schedule: tuple[ScheduleStep, ...] = ()
    multipliers: dict[str, StrictInt] = Field(default_factory=dict)  # group -> factor
    applies_when: Condition = Condition()
    sub_quotas: tuple[SubQuotaSpec, ...] = ()
    provenance: Provenance

    @model_validator(mode="after")
    def _shape(self) -> QuotaSpec:
        if (self.cap is None) == (not self.schedule):
            raise ValueError("give either cap or schedule")
        if (self.period == "window") != (self.window is not None):
            raise ValueError("window is given exactly when period = 'window'")
        if (self.scope == "entity") != (self.entity is not None):
            raise ValueError("entity is given exactly when scope = 'entity'")
        if self.multipliers and self.scope not in ("country", "operator_country"):
            raise ValueError("multipliers need a per-country scope")
        if any(f < 1 for f in self.multipliers.values()):
            raise ValueError("multipliers are at least 1")
        starts = [step.start for step in self.schedule]
        if starts != sorted(set(starts)):
            raise ValueError("schedule steps must be in strictly increasing order")
        return self


class UveuSpec(Model):
    """UVEU footprint ratios (integer percentages) and who may be a UVEU."""

    rule: str = Field(min_length=1)
    headquarters_in: str  # group: the UVEU and its ultimate parent must be headquartered there
    tier1_min_pct: StrictInt = Field(ge=0, le=100)
    tier2_max_pct: StrictInt = Field(ge=0, le=100)
    home_min_pct: dict[str, StrictInt] = Field(default_factory=dict)
    provenance: Provenance

    @field_validator("home_min_pct")
    @classmethod
    def _home(cls, value: dict[str, int]) -> dict[str, int]:
        for code, pct in value.items():
            check_country(code)
            if not 0 <= pct <= 100:
                raise ValueError(f"{code}: percentage {pct} is not within 0..100")
        return value
