"""RuleSet: one validated rule set and the lookups the engine asks of it.

It holds no decision logic: which group a country is in on a date, which
entity authorisation covers a party, which quota stores a bucket kind, the
chip catalog, and the rule set as public data with the provenance of every
number and list (GET /v1/policy).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from ledger.countries import is_known_country
from ledger.policy.catalog import Chip, chip_of
from ledger.policy.public import public_dict, sureness
from ledger.policy.schema import ChipSpec, EntitySpec, GroupSpec, RuleSetFile
from ledger.policy.schema_rules import QuotaSpec, StepSpec, UveuSpec

T = TypeVar("T")
MEMO_LIMIT = 50_000  # entries per memo table; cleared whole when full


class UnknownCountryError(ValueError):
    """A country code that is not an ISO 3166-1 alpha-2 code pycountry knows."""


def utc_date(on: date | datetime) -> date:
    """The UTC calendar date of `on`; a naive datetime is taken to be UTC already."""
    if isinstance(on, datetime):
        if on.tzinfo is not None:
            on = on.astimezone(UTC)
        return on.date()
    return on


def check_known(country: str) -> str:
    """`country`, or UnknownCountryError: a typo must never fall into a default group."""
    if not is_known_country(country):
        raise UnknownCountryError(f"unknown country code {country!r}")
    return country


class RuleSet:
    """A validated, immutable rule set (`spec`) with its merged chip catalog."""

    def __init__(self, spec: RuleSetFile, source: str, chips: tuple[ChipSpec, ...]) -> None:
        self.spec = spec
        self.source = source
        self.chip_specs = chips
        self._chips = {c.id: chip_of(c) for c in chips}
        self._quota_by_kind = {q.kind: (name, q) for name, q in spec.quotas.items()}
        # Answers of pure lookups on this immutable rule set, by table and key: every
        # reservation line asks the same questions of the same few parties and days.
        self._memo: dict[str, dict[Hashable, Any]] = {}

    def memo(self, table: str, key: Hashable, compute: Callable[[], T]) -> T:
        """`compute()`, remembered under `key` in `table`. Only for answers that depend
        on nothing but the rule set and `key` (the rule set never changes)."""
        found = self._memo.setdefault(table, {})
        try:
            return found[key]  # type: ignore[no-any-return,unused-ignore]
        except KeyError:
            pass
        value = compute()
        if len(found) >= MEMO_LIMIT:
            found.clear()
        found[key] = value
        return value

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

    # Groups and tiers ------------------------------------------------------------
    def group(self, name: str) -> GroupSpec:
        return self.spec.groups[name]

    def in_group(self, country: str, name: str, on: date | datetime) -> bool:
        """Whether `country` is in group `name` on the UTC date of `on` (from inclusive,
        until exclusive). Raises UnknownCountryError for an unknown code."""
        day = utc_date(on)
        return self.memo("in_group", (country, name, day),
                         lambda: self._in_group(country, name, day))

    def _in_group(self, country: str, name: str, day: date) -> bool:
        check_known(country)
        group = self.spec.groups[name]
        if group.complement_of:
            return not any(self.in_group(country, other, day) for other in group.complement_of)
        return any(country in m.countries and m.covers(day) for m in group.members)

    def in_any(self, country: str, names: tuple[str, ...], on: date) -> str | None:
        """The first of `names` that `country` is in on `on`, or None."""
        return next((name for name in names if self.in_group(country, name, on)), None)

    def tier(self, country: str, on: date | datetime) -> int:
        """The display tier (1, 2 or 3) of `country` on the UTC date of `on`: the groups the
        file names as tier 1 and tier 3, else its `other` tier. UVEU ratios use it too."""
        check_known(country)
        tiers = self.spec.tiers
        if tiers.tier3 is not None and self.in_group(country, tiers.tier3, on):
            return 3
        if tiers.tier1 is not None and self.in_group(country, tiers.tier1, on):
            return 1
        return tiers.other

    # Entities and measures ---------------------------------------------------------
    def entity(self, name: str) -> EntitySpec:
        return self.spec.entities[name]

    def entity_covers(self, name: str, operator_id: str | None, consignee_id: str | None,
                      destination: str, on: date) -> bool:
        """Whether authorisation `name` is valid on `on` for `destination` and names the
        operator or the consignee (ids as this deployment stores them)."""
        ent = self.spec.entities[name]
        if not ent.covers(on) or (ent.countries and destination not in ent.countries):
            return False
        return operator_id in ent.operators or consignee_id in ent.consignees

    def measure_state(self, name: str, on: date | datetime) -> str | None:
        """"in_force", "suspended" or None (not yet / no longer) for a dated measure."""
        day = utc_date(on)
        for span in self.spec.measures[name].spans:
            if span.covers(day):
                return span.state
        return None

    # Steps and quotas ----------------------------------------------------------------
    @property
    def steps(self) -> tuple[StepSpec, ...]:
        return self.spec.steps

    def quota(self, name: str) -> QuotaSpec:
        return self.spec.quotas[name]

    def quota_of_kind(self, kind: str) -> tuple[str, QuotaSpec] | None:
        """The quota whose buckets have `kind` (kinds are unique within a rule set)."""
        return self._quota_by_kind.get(kind)

    @property
    def uveu(self) -> UveuSpec | None:
        """The UVEU ratios, or None when this rule set checks none."""
        return self.spec.uveu

    # Chips ---------------------------------------------------------------------------
    def chips(self) -> tuple[Chip, ...]:
        """The catalog (shared, with this rule set's overrides) in catalog order."""
        return tuple(self._chips.values())

    def chip(self, chip_id: str) -> Chip | None:
        """The catalog entry for `chip_id` (case-sensitive), or None."""
        return self._chips.get(chip_id)

    def chip_tpp(self, chip_id: str) -> int | None:
        """TPP per package of `chip_id` (case-sensitive), or None when not in the catalog."""
        chip = self._chips.get(chip_id)
        return None if chip is None else chip.tpp

    # Confidence and publication -----------------------------------------------------
    def sureness(self) -> dict[str, str]:
        """Every number or list that is not firm, by dotted path, with its status."""
        return sureness(self.spec, self.chip_specs)

    def not_firm(self) -> list[str]:
        """Dotted paths of every number or list whose status is not "firm"."""
        return list(self.sureness())

    def to_public_dict(self) -> dict[str, Any]:
        """The rule set as JSON-able data (GET /v1/policy): ISO dates, every number an int,
        each group, step, quota, entity and chip with its provenance."""
        return public_dict(self.spec, self.chip_specs)
