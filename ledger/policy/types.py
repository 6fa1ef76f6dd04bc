"""The vocabulary shared by the policy engine and the ledger service.

Everything here is plain, immutable data: the policy engine reads these and
returns these, and never touches storage. All TPP figures are exact ints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

# Bucket kinds. `footprint` is uncapped: it records an operator's TPP per
# country (every shipment, Tier 1 included) so UVEU ratios can be checked.
COUNTRY_ALLOCATION = "country_allocation"
LPP = "lpp"
NVEU = "nveu"
LICENSE = "license"
FOOTPRINT = "footprint"
BUCKET_KINDS = (COUNTRY_ALLOCATION, LPP, NVEU, LICENSE, FOOTPRINT)

# Constraints a violation names besides bucket kinds: the UVEU ratios, and rules that
# bind without any cap (no export at all; a licence needed but not given).
UVEU = "uveu"
TIER3 = "tier3"
LICENSE_REQUIRED = "license_required"
PROHIBITED = "prohibited"  # a presumption of denial (e.g. USC-7 above the thresholds)
# A party matches a restricted-party list entry not cleared (ledger.screening).
SCREENING = "screening"
RULE_CONSTRAINTS = frozenset({TIER3, LICENSE_REQUIRED, PROHIBITED, SCREENING})

# Authorization paths a line can take.
PATH_TIER1 = "tier1"
PATH_UVEU = "uveu"
PATH_NVEU = "nveu"
PATH_LPP = "lpp"
PATH_LICENSE = "license"
PATHS = (PATH_TIER1, PATH_UVEU, PATH_NVEU, PATH_LPP, PATH_LICENSE)


@dataclass(frozen=True, order=True)
class BucketKey:
    """Identity of one quota that can run out: (kind, key, period).

    `operator_id` and `country` are scope columns the store indexes so it can
    find, e.g., every footprint bucket of one operator. They are derived from
    the identity, never independent of it.
    """

    kind: str
    key: str
    period: str
    operator_id: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Balance:
    committed: int = 0
    held: int = 0  # unexpired holds only: a hold past its time counts for nothing

    @property
    def used(self) -> int:
        return self.committed + self.held


@dataclass(frozen=True)
class OperatorInfo:
    id: str
    hq_country: str
    veu_type: str | None = None  # None | "UVEU" | "NVEU"
    veu_country: str | None = None  # for NVEU: the one country it is validated in
    footprint: Mapping[str, int] = field(default_factory=dict)  # declared pre-ledger TPP
    # Headquarters country of its ultimate parent; None: it is its own parent (= hq_country).
    parent_country: str | None = None

    @property
    def parent_hq(self) -> str:
        """The ultimate parent's headquarters country (its own when it has no parent)."""
        return self.parent_country or self.hq_country


@dataclass(frozen=True)
class ConsigneeInfo:
    id: str
    country: str
    operator_id: str | None = None
    group_id: str | None = None
    hq_country: str | None = None  # None: headquartered where it is (= country)
    parent_country: str | None = None  # ultimate parent's HQ; None: same as its hq

    @property
    def hq(self) -> str:
        """Its headquarters country (its location when not given)."""
        return self.hq_country or self.country

    @property
    def parent_hq(self) -> str:
        """Its ultimate parent's headquarters country (its own hq when not given)."""
        return self.parent_country or self.hq


@dataclass(frozen=True)
class LicenseInfo:
    id: str
    country: str
    consignee_id: str | None
    tpp: int
    valid_from: date
    valid_to: date  # inclusive


@dataclass(frozen=True)
class LineRequest:
    """One line of a reservation, resolved against the reference data."""

    destination_country: str
    operator: OperatorInfo
    consignee: ConsigneeInfo
    tpp: int
    license: LicenseInfo | None = None
    chip: str | None = None  # catalog id when the line named a chip; None for raw TPP


@dataclass(frozen=True)
class Needs:
    """What the service must lock and load before the policy can decide."""

    buckets: frozenset[BucketKey]
    footprint_of: frozenset[str]  # operators whose every footprint bucket is needed


@dataclass(frozen=True)
class Draw:
    """TPP a line takes from one bucket; `cap` is None for uncapped buckets."""

    bucket: BucketKey
    tpp: int
    cap: int | None


@dataclass(frozen=True)
class Violation:
    """Why a line was denied. Built by `ledger.policy.reasons`, which writes the sentence."""

    line: int
    # A capped kind (lpp, country_allocation, nveu, uveu, license) or a rule
    # (tier3, license_required): see RULE_CONSTRAINTS.
    constraint: str
    key: str
    cap: int
    used: int
    requested: int
    rule: str = ""  # the rule-set step that produced it (empty in outcomes stored before)
    reason: str = ""  # one sentence for a person


@dataclass(frozen=True)
class LineDecision:
    line: int
    tpp: int
    path: str | None  # None when denied
    draws: tuple[Draw, ...] = ()
    violations: tuple[Violation, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.path is not None


@dataclass(frozen=True)
class Decision:
    rule_set: str
    rule_set_version: str
    lines: tuple[LineDecision, ...]

    @property
    def allowed(self) -> bool:
        return all(line.allowed for line in self.lines)

    @property
    def violations(self) -> tuple[Violation, ...]:
        return tuple(v for line in self.lines for v in line.violations)


@dataclass(frozen=True)
class HeadroomBucket:
    """A bucket that applies to a headroom query, with its cap (None: uncapped)."""

    bucket: BucketKey
    kind: str  # as shown to users: country_allocation | lpp | nveu | license | uveu
    key: str
    cap: int | None


BalanceView = Mapping[BucketKey, Balance]
"""Current balances of the buckets named in Needs (missing means unused)."""


def at_date(at: datetime) -> date:
    """The UTC calendar date that decides years, quarters and licence validity."""
    return at.date()
