"""The shape of a rule-set file and of the chip catalog, validated with pydantic (v2).

Only structure and each value's own sanity live here; references between
sections (a step naming a group, a quota naming a reference chip) are checked
by `ruleset.check_references`, and meaning is applied by the engine. Every
model forbids unknown keys, so a misspelt key is an error, not a silent default.
Steps and quotas have their own module, `schema_rules`.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import (
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ledger.policy.schema_base import CHIP_ID, Dated, Model, Provenance, check_country, check_name
from ledger.policy.schema_rules import QuotaSpec, StepSpec, UveuSpec
from ledger.units import exact


class Membership(Dated):
    """Countries in a group for a span of dates."""

    countries: tuple[str, ...] = Field(min_length=1)
    provenance: Provenance

    @field_validator("countries")
    @classmethod
    def _known(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        for code in codes:
            check_country(code)
        if len(set(codes)) != len(codes):
            raise ValueError("a country is listed twice")
        return codes


class GroupSpec(Model):
    """A named country group: listed members (dated), or every country in none of
    `complement_of` (e.g. Tier 2 = neither Tier 1 nor Tier 3)."""

    title: str = Field(min_length=1)
    # How a member reads after "is" in a reason ("Tier 3"); default "in <title>".
    member_phrase: str = ""
    rule: str = Field(min_length=1)
    members: tuple[Membership, ...] = ()
    complement_of: tuple[str, ...] = ()
    provenance: Provenance | None = None  # required without members (they have their own)

    @model_validator(mode="after")
    def _one_kind(self) -> GroupSpec:
        if self.members and self.complement_of:
            raise ValueError("give members or complement_of, not both")
        if not self.members and self.provenance is None:
            raise ValueError("a group without members (a complement, or empty) needs provenance")
        return self


class EntitySpec(Dated):
    """Named parties authorised (or limited) by a rule, by this deployment's ids.

    The ids are operator / consignee ids of the ledger that loads the file, so a
    deployment lists its own parties in its own rule-set file.
    """

    title: str = Field(min_length=1)
    rule: str = Field(min_length=1)
    operators: tuple[str, ...] = ()
    consignees: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()  # destinations it covers; empty: any
    provenance: Provenance

    @field_validator("countries")
    @classmethod
    def _known(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        for code in codes:
            check_country(code)
        return codes


class MeasureSpan(Dated):
    state: Literal["in_force", "suspended"]
    provenance: Provenance


class MeasureSpec(Model):
    """A measure whose dates are data (e.g. a rule in force, then suspended)."""

    title: str = Field(min_length=1)
    rule: str = Field(min_length=1)
    spans: tuple[MeasureSpan, ...] = Field(min_length=1)


class ChipSpec(Model):
    """One catalog entry (per package unless the note says otherwise)."""

    id: str
    name: str = ""
    tpp: StrictInt = Field(gt=0)
    die_area_mm2: StrictInt | str | None = None
    dram_bandwidth_gbs: StrictInt | None = Field(default=None, gt=0)
    provenance: Provenance
    bandwidth_provenance: Provenance | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not CHIP_ID.match(value):
            raise ValueError(f"{value!r} is not a chip id (letters, digits, '.', '_', '-')")
        return value

    @field_validator("die_area_mm2")
    @classmethod
    def _area(cls, value: int | str | None) -> int | str | None:
        if value is not None and exact(value, "die_area_mm2") <= 0:
            raise ValueError("die area must be positive")
        return value

    @model_validator(mode="after")
    def _bandwidth_source(self) -> ChipSpec:
        if (self.dram_bandwidth_gbs is None) != (self.bandwidth_provenance is None):
            raise ValueError("dram_bandwidth_gbs and bandwidth_provenance go together")
        return self


def _unique_chips(chips: tuple[ChipSpec, ...]) -> tuple[ChipSpec, ...]:
    seen: set[str] = set()
    for chip in chips:
        if chip.id in seen:
            raise ValueError(f"chip id {chip.id!r} is listed twice")
        seen.add(chip.id)
    return chips


class CatalogFile(Model):
    """The shared chip catalog (chips.toml)."""

    chips: tuple[ChipSpec, ...] = Field(min_length=1)

    _unique = field_validator("chips")(_unique_chips)


class TiersSpec(Model):
    """Which groups the display tiers are (headroom shows a tier; UVEU ratios use it)."""

    tier1: str | None = None
    tier3: str | None = None
    other: Literal[1, 2] = 2


class RuleSetFile(Model):
    """One rule-set file as written on disk."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    effective_from: date
    effective_to: date | None = None
    description: str = ""
    tiers: TiersSpec = TiersSpec()
    groups: dict[str, GroupSpec] = Field(default_factory=dict)
    entities: dict[str, EntitySpec] = Field(default_factory=dict)
    measures: dict[str, MeasureSpec] = Field(default_factory=dict)
    quotas: dict[str, QuotaSpec] = Field(default_factory=dict)
    uveu: UveuSpec | None = None
    steps: tuple[StepSpec, ...] = ()
    chips: tuple[ChipSpec, ...] = ()  # overrides or additions to the shared catalog

    _unique = field_validator("chips")(_unique_chips)

    @field_validator("groups", "entities", "measures", "quotas")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for key in value:
            check_name(key)
        return value

    @field_validator("effective_to")
    @classmethod
    def _effective_to(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("effective_from")
        if value is not None and start is not None and value < start:
            raise ValueError("effective_to is before effective_from")
        return value
