"""Rule sets: loading, validation and the questions the engine asks of one.

A rule set is data (a TOML file, see `rulesets/`); this module reads it once,
validates it (errors name the file and the field) and answers lookups such as
"which tier is this country in on this date". It holds no decision logic.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fractions import Fraction
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ledger.countries import is_known_country
from ledger.policy.schema import AllocationSpec, LppSpec, NveuSpec, RuleSetFile, UveuSpec
from ledger.units import Classification, classify_3a090, exact

_BUILTIN_PACKAGE = "ledger.policy"
_BUILTIN_FOLDER = "rulesets"


class RuleSetError(ValueError):
    """A rule-set file could not be read or is invalid; the message is "<file>: <field>: <why>"."""


class UnknownCountryError(ValueError):
    """A country code that is not an ISO 3166-1 alpha-2 code pycountry knows."""


@dataclass(frozen=True)
class Chip:
    """One catalog entry: model id -> TPP per package (and die area when known)."""

    id: str
    name: str
    tpp: int
    die_area_mm2: Fraction | None
    sure: str

    @property
    def classification(self) -> Classification | None:
        """Its ECCN 3A090 class, or None when the die area is needed but unknown."""
        try:
            return classify_3a090(self.tpp, self.die_area_mm2)
        except ValueError:
            return None


def utc_date(on: date | datetime) -> date:
    """The UTC calendar date of `on`; a naive datetime is taken to be UTC already."""
    if isinstance(on, datetime):
        if on.tzinfo is not None:
            on = on.astimezone(UTC)
        return on.date()
    return on


class RuleSet:
    """A validated, immutable rule set and the lookups the policy engine needs."""

    def __init__(self, spec: RuleSetFile, source: str) -> None:
        self.spec = spec
        self.source = source
        self._chips = {
            c.id: Chip(
                id=c.id,
                name=c.name,
                tpp=c.tpp,
                die_area_mm2=None if c.die_area_mm2 is None else exact(c.die_area_mm2),
                sure=c.sure,
            )
            for c in spec.chips
        }

    def __repr__(self) -> str:
        return f"RuleSet({self.name!r}, version={self.version!r}, source={self.source!r})"

    # Identity -----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def effective_from(self) -> date:
        return self.spec.effective_from

    @property
    def effective_to(self) -> date | None:
        return self.spec.effective_to

    def in_force(self, on: date | datetime) -> bool:
        """Whether `on` falls in the rule set's effective dates (informative; never enforced)."""
        day = utc_date(on)
        end = self.effective_to
        return self.effective_from <= day and (end is None or day <= end)

    # Tiers ---------------------------------------------------------------------
    def tier(self, country: str, on: date | datetime) -> int:
        """The tier (1, 2 or 3) of `country` on the UTC date of `on`.

        Raises UnknownCountryError for a code pycountry does not know, so a typo
        can never fall silently into the default tier.
        """
        if not is_known_country(country):
            raise UnknownCountryError(f"unknown country code {country!r}")
        day = utc_date(on)
        for membership in self.spec.tiers:
            if country in membership.countries and membership.covers(day):
                return membership.tier
        return self.spec.default_tier

    @property
    def tier3_treatment(self) -> str:
        """ "deny" or "license_required"."""
        return self.spec.tier3_treatment

    def is_g2g(self, country: str) -> bool:
        flags = self.spec.country_flags.get(country)
        return flags is not None and flags.g2g

    # Quotas --------------------------------------------------------------------
    @property
    def lpp(self) -> LppSpec | None:
        """The low-volume exemption, or None when this rule set has none."""
        return self.spec.lpp

    @property
    def uveu(self) -> UveuSpec | None:
        """The UVEU ratios, or None when this rule set checks none."""
        return self.spec.uveu

    @property
    def nveu(self) -> NveuSpec | None:
        """The NVEU schedule, or None when this rule set has no NVEU caps."""
        return self.spec.nveu

    @property
    def country_allocation(self) -> AllocationSpec | None:
        return self.spec.country_allocation

    def allocation_cap(self, country: str) -> int:
        """The country allocation of `country` (multiplied for g2g countries).

        Raises LookupError when the rule set has no country allocation.
        """
        alloc = self._allocation()
        return alloc.cap * alloc.g2g_multiplier if self.is_g2g(country) else alloc.cap

    def allocation_period(self) -> str:
        """The allocation bucket's period: the window's years, e.g. "2025-2027"."""
        alloc = self._allocation()
        return f"{alloc.window_from.year}-{alloc.window_to.year}"

    def allocation_open(self, on: date | datetime) -> bool:
        """Whether `on` lies in the allocation window (inclusive at both ends)."""
        alloc = self._allocation()
        return alloc.window_from <= utc_date(on) <= alloc.window_to

    def _allocation(self) -> AllocationSpec:
        if self.spec.country_allocation is None:
            raise LookupError(f"rule set {self.name} has no country allocation")
        return self.spec.country_allocation

    def nveu_cap(self, on: date | datetime) -> int:
        """The NVEU cumulative cap in force in the quarter of `on` (0 before the first step).

        Raises LookupError when the rule set has no NVEU schedule.
        """
        if self.spec.nveu is None:
            raise LookupError(f"rule set {self.name} has no NVEU schedule")
        day = utc_date(on)
        quarter = (day.year, (day.month - 1) // 3 + 1)
        cap = 0
        for step in self.spec.nveu.steps:
            if step.quarter <= quarter:
                cap = step.cap
        return cap

    # Chips ---------------------------------------------------------------------
    def chips(self) -> tuple[Chip, ...]:
        """The catalog in file order."""
        return tuple(self._chips.values())

    def chip(self, chip_id: str) -> Chip | None:
        """The catalog entry for `chip_id` (case-sensitive), or None."""
        return self._chips.get(chip_id)

    def chip_tpp(self, chip_id: str) -> int | None:
        """TPP per package of `chip_id` (case-sensitive), or None when not in the catalog."""
        chip = self._chips.get(chip_id)
        return None if chip is None else chip.tpp

    # Confidence and publication -------------------------------------------------
    def sureness(self) -> dict[str, str]:
        """Every number that is not firm, by dotted path, with its level."""
        out: dict[str, str] = {}
        for membership in self.spec.tiers:
            if membership.sure != "firm":
                for code in membership.countries:
                    out[f"tiers.tier{membership.tier}.{code}"] = membership.sure
        spec = self.spec
        if spec.lpp is not None and spec.lpp.sure != "firm":
            out["lpp.cap"] = spec.lpp.sure
        if spec.country_allocation is not None and spec.country_allocation.sure != "firm":
            for field in ("cap", "g2g_multiplier", "window"):
                out[f"country_allocation.{field}"] = spec.country_allocation.sure
        if spec.uveu is not None and spec.uveu.sure != "firm":
            for field in ("tier1_min_pct", "tier2_max_pct", "home_min_pct"):
                out[f"uveu.{field}"] = spec.uveu.sure
        if spec.nveu is not None and spec.nveu.sure != "firm":
            for step in spec.nveu.steps:
                out[f"nveu.steps.{step.from_}"] = spec.nveu.sure
        for chip in spec.chips:
            if chip.sure != "firm":
                out[f"chips.{chip.id}.tpp"] = chip.sure
        return out

    def not_firm(self) -> list[str]:
        """Dotted paths of every number in the file that is only "likely" or "reported"."""
        return list(self.sureness())

    def to_public_dict(self) -> dict[str, Any]:
        """The rule set as JSON-able data (GET /v1/policy): ISO dates, every number an int."""
        spec = self.spec
        alloc = spec.country_allocation
        return {
            "name": spec.name,
            "version": spec.version,
            "effective_from": spec.effective_from.isoformat(),
            "effective_to": None if spec.effective_to is None else spec.effective_to.isoformat(),
            "description": spec.description,
            "default_tier": spec.default_tier,
            "tier3_treatment": spec.tier3_treatment,
            "tiers": [
                {
                    "tier": m.tier,
                    "countries": list(m.countries),
                    "from": None if m.from_ is None else m.from_.isoformat(),
                    "until": None if m.until is None else m.until.isoformat(),
                }
                for m in spec.tiers
            ],
            "country_flags": {code: {"g2g": f.g2g} for code, f in spec.country_flags.items()},
            "lpp": None
            if spec.lpp is None
            else {"cap": spec.lpp.cap, "aggregate_groups": spec.lpp.aggregate_groups},
            "country_allocation": None
            if alloc is None
            else {
                "cap": alloc.cap,
                "window_from": alloc.window_from.isoformat(),
                "window_to": alloc.window_to.isoformat(),
                "period": self.allocation_period(),
                "g2g_multiplier": alloc.g2g_multiplier,
            },
            "uveu": None
            if spec.uveu is None
            else {
                "tier1_min_pct": spec.uveu.tier1_min_pct,
                "tier2_max_pct": spec.uveu.tier2_max_pct,
                "home_min_pct": dict(spec.uveu.home_min_pct),
            },
            "nveu": None
            if spec.nveu is None
            else {"steps": [{"from": s.from_, "cap": s.cap} for s in spec.nveu.steps]},
            "chips": [{"id": c.id, "name": c.name, "tpp": c.tpp} for c in spec.chips],
            "not_firm": self.sureness(),
        }


# Loading ----------------------------------------------------------------------
def builtin_rule_sets() -> list[str]:
    """Names of the rule sets shipped with the ledger, sorted."""
    folder = resources.files(_BUILTIN_PACKAGE).joinpath(_BUILTIN_FOLDER)
    return sorted(
        item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml")
    )


def load_rule_set(name_or_path: str) -> RuleSet:
    """Load a built-in rule set by name, or a user's rule-set file by path.

    A value ending in ".toml" or containing a path separator is a path.
    Raises RuleSetError("<file>: <field>: <why>") for anything wrong.
    """
    if name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path:
        path = Path(name_or_path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise RuleSetError(f"{path}: (file): cannot read: {exc.strerror or exc}") from exc
        return parse_rule_set(raw, str(path))
    return _load_builtin(name_or_path)


@cache
def _load_builtin(name: str) -> RuleSet:
    # Built-in files never change while the process runs, so one parse is enough.
    if name not in builtin_rule_sets():
        known = ", ".join(builtin_rule_sets())
        raise RuleSetError(f"{name}: name: not a built-in rule set (known: {known})")
    item = resources.files(_BUILTIN_PACKAGE).joinpath(_BUILTIN_FOLDER).joinpath(f"{name}.toml")
    rule_set = parse_rule_set(item.read_bytes(), f"{_BUILTIN_FOLDER}/{name}.toml")
    if rule_set.name != name:
        raise RuleSetError(f"{rule_set.source}: name: {rule_set.name!r} differs from file name")
    return rule_set


def parse_rule_set(raw: bytes, source: str) -> RuleSet:
    """Validate the bytes of a rule-set file; `source` names it in error messages."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuleSetError(f"{source}: (toml): {exc}") from exc
    try:
        spec = RuleSetFile.model_validate(data)
    except ValidationError as exc:
        raise RuleSetError(_describe(source, exc)) from exc
    return RuleSet(spec, source)


def _describe(source: str, exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    field = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
    ).lstrip(".")
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {field or '(file)'}: {message}{more}"
