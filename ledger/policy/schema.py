"""The shape of a rule-set file, validated with pydantic (v2).

Only the structure and each value's own sanity live here; the meaning of
the numbers is applied by `ruleset.RuleSet` and `engine`. Every model
forbids unknown keys, so a misspelt field is an error, not a silent default.
"""

from __future__ import annotations

import itertools
import re
from datetime import date
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ledger.countries import is_known_country
from ledger.units import exact

Sure = Literal["firm", "likely", "reported"]
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_CHIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _check_country(code: str) -> str:
    if not is_known_country(code):
        raise ValueError(f"unknown country code {code!r} (ISO 3166-1 alpha-2, upper case)")
    return code


class TierMembership(_Model):
    """Countries in one tier from `from_` (inclusive) until `until` (exclusive)."""

    tier: Literal[1, 2, 3]
    countries: tuple[str, ...] = Field(min_length=1)
    from_: date | None = Field(default=None, alias="from")
    until: date | None = None
    sure: Sure = "firm"

    @field_validator("countries")
    @classmethod
    def _known(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        for code in codes:
            _check_country(code)
        if len(set(codes)) != len(codes):
            raise ValueError("a country is listed twice")
        return codes

    @model_validator(mode="after")
    def _dates(self) -> TierMembership:
        if self.from_ is not None and self.until is not None and self.until <= self.from_:
            raise ValueError("until must be after from")
        return self

    def covers(self, on: date) -> bool:
        """True when the membership is in force on `on`."""
        return (self.from_ is None or self.from_ <= on) and (self.until is None or on < self.until)


class CountryFlags(_Model):
    g2g: bool = False


class LppSpec(_Model):
    cap: StrictInt = Field(ge=0)
    aggregate_groups: bool = True
    sure: Sure = "firm"


class AllocationSpec(_Model):
    cap: StrictInt = Field(ge=0)
    window_from: date
    window_to: date  # inclusive
    g2g_multiplier: StrictInt = Field(default=1, ge=1)
    sure: Sure = "firm"

    @field_validator("window_to")
    @classmethod
    def _window(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("window_from")
        if start is not None and value < start:
            raise ValueError("window_to is before window_from")
        return value


class UveuSpec(_Model):
    tier1_min_pct: StrictInt = Field(ge=0, le=100)
    tier2_max_pct: StrictInt = Field(ge=0, le=100)
    home_min_pct: dict[str, StrictInt] = Field(default_factory=dict)
    sure: Sure = "firm"

    @field_validator("home_min_pct")
    @classmethod
    def _home(cls, value: dict[str, int]) -> dict[str, int]:
        for code, pct in value.items():
            _check_country(code)
            if not 0 <= pct <= 100:
                raise ValueError(f"{code}: percentage {pct} is not within 0..100")
        return value


class NveuStep(_Model):
    from_: str = Field(alias="from")
    cap: StrictInt = Field(ge=0)

    @field_validator("from_")
    @classmethod
    def _quarter(cls, value: str) -> str:
        if not _QUARTER.match(value):
            raise ValueError(f"{value!r} is not a quarter like 2026Q1")
        return value

    @property
    def quarter(self) -> tuple[int, int]:
        match = _QUARTER.match(self.from_)
        assert match is not None  # validated above
        return int(match.group(1)), int(match.group(2))


class NveuSpec(_Model):
    steps: tuple[NveuStep, ...] = Field(min_length=1)
    sure: Sure = "firm"

    @field_validator("steps")
    @classmethod
    def _ordered(cls, steps: tuple[NveuStep, ...]) -> tuple[NveuStep, ...]:
        quarters = [step.quarter for step in steps]
        if any(b <= a for a, b in itertools.pairwise(quarters)):
            raise ValueError("steps must be in strictly increasing quarter order")
        return steps


class ChipSpec(_Model):
    id: str
    name: str = ""
    tpp: StrictInt = Field(gt=0)
    die_area_mm2: StrictInt | str | None = None
    sure: Sure = "firm"

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _CHIP_ID.match(value):
            raise ValueError(f"{value!r} is not a chip id (letters, digits, '.', '_', '-')")
        return value

    @field_validator("die_area_mm2")
    @classmethod
    def _area(cls, value: int | str | None) -> int | str | None:
        if value is not None and exact(value, "die_area_mm2") <= 0:
            raise ValueError("die area must be positive")
        return value


class RuleSetFile(_Model):
    """One rule-set file as written on disk."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    effective_from: date
    effective_to: date | None = None
    description: str = ""
    default_tier: Literal[1, 2] = 2
    tier3_treatment: Literal["deny", "license_required"] = "deny"
    tiers: tuple[TierMembership, ...] = ()
    country_flags: dict[str, CountryFlags] = Field(default_factory=dict)
    lpp: LppSpec | None = None
    country_allocation: AllocationSpec | None = None
    uveu: UveuSpec | None = None
    nveu: NveuSpec | None = None
    chips: tuple[ChipSpec, ...] = ()

    @field_validator("country_flags")
    @classmethod
    def _flag_countries(cls, value: dict[str, CountryFlags]) -> dict[str, CountryFlags]:
        for code in value:
            _check_country(code)
        return value

    @field_validator("chips")
    @classmethod
    def _unique_chips(cls, chips: tuple[ChipSpec, ...]) -> tuple[ChipSpec, ...]:
        seen: set[str] = set()
        for chip in chips:
            if chip.id in seen:
                raise ValueError(f"chip id {chip.id!r} is listed twice")
            seen.add(chip.id)
        return chips

    @field_validator("effective_to")
    @classmethod
    def _effective_to(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("effective_from")
        if value is not None and start is not None and value < start:
            raise ValueError("effective_to is before effective_from")
        return value

    @field_validator("tiers")
    @classmethod
    def _no_overlap(cls, tiers: tuple[TierMembership, ...]) -> tuple[TierMembership, ...]:
        # A country in two memberships whose dates overlap would have two tiers.
        for i, first in enumerate(tiers):
            for second in tiers[i + 1 :]:
                shared = set(first.countries) & set(second.countries)
                if shared and _overlap(first, second):
                    raise ValueError(f"{sorted(shared)} are in two overlapping memberships")
        return tiers


def _overlap(a: TierMembership, b: TierMembership) -> bool:
    starts_before_b_ends = b.until is None or a.from_ is None or a.from_ < b.until
    starts_before_a_ends = a.until is None or b.from_ is None or b.from_ < a.until
    return starts_before_b_ends and starts_before_a_ends
