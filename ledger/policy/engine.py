"""The pure policy engine: request + balances -> decision. No I/O, no clock, no storage.

Invariant kept here (and tested by property tests): when a decision is
allowed, for every capped bucket it draws on, the stored use plus all the
request's draws on that bucket never exceeds the bucket's cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime

from ledger.policy import reasons
from ledger.policy.buckets import (
    allocation_bucket,
    footprint_bucket,
    footprint_from_balances,
    license_bucket,
    lpp_bucket,
    nveu_bucket,
)
from ledger.policy.ruleset import RuleSet, utc_date
from ledger.policy.types import (
    COUNTRY_ALLOCATION,
    FOOTPRINT,
    LICENSE,
    LPP,
    NVEU,
    PATH_LICENSE,
    PATH_LPP,
    PATH_NVEU,
    PATH_TIER1,
    PATH_UVEU,
    TIER3,
    UVEU,
    Balance,
    BalanceView,
    BucketKey,
    ConsigneeInfo,
    Decision,
    Draw,
    HeadroomBucket,
    LicenseInfo,
    LineDecision,
    LineRequest,
    Needs,
    OperatorInfo,
    Violation,
)
from ledger.policy.uveu import uveu_headroom, uveu_violations


class PolicyInputError(ValueError):
    """A line the engine cannot decide because it is malformed (the API answers 422)."""


def country_tier(rule_set: RuleSet, country: str, on: date | datetime) -> int:
    """The tier (1, 2 or 3) of `country` on the UTC date of `on`.

    Raises UnknownCountryError for a code that is not ISO 3166-1 alpha-2.
    """
    return rule_set.tier(country, on)


def _is_uveu(rule_set: RuleSet, operator: OperatorInfo) -> bool:
    return operator.veu_type == "UVEU" and rule_set.uveu is not None


def _is_nveu_for(rule_set: RuleSet, operator: OperatorInfo, country: str) -> bool:
    return (
        operator.veu_type == "NVEU"
        and operator.veu_country == country
        and rule_set.nveu is not None
    )


def _tier3_role(party: str, destination: str, operator_hq: str) -> str:
    """Which party put the line in Tier 3, in words (the first match, as `_tier3_party`)."""
    if party == destination:
        return "the destination"
    if party == operator_hq:
        return "the operator's headquarters country"
    return "the consignee's country"


def _tier3_party(rule_set: RuleSet, countries: Iterable[str | None], on: date) -> str | None:
    """The first of destination / operator HQ / consignee country that is Tier 3, if any."""
    for country in countries:
        if country is not None and rule_set.tier(country, on) == 3:
            return country
    return None


def _allocation_cap(rule_set: RuleSet, country: str, on: date) -> int:
    # Outside its window the allocation grants nothing: the rule names no
    # allocation for other years, and an unknown quota must not fail open.
    return rule_set.allocation_cap(country) if rule_set.allocation_open(on) else 0


def _licence_unusable_because(
    licence: LicenseInfo, country: str, consignee_id: str, on: date
) -> str | None:
    """None when the licence is valid on `on` (both ends inclusive), for `country`, and for
    the consignee if it names one; else why not."""
    if licence.country != country:
        return f"it is for {licence.country}, not {country}"
    if licence.consignee_id is not None and licence.consignee_id != consignee_id:
        return f"it names consignee {licence.consignee_id}, not {consignee_id}"
    if not licence.valid_from <= on <= licence.valid_to:
        return (f"it is valid from {licence.valid_from.isoformat()} to "
                f"{licence.valid_to.isoformat()}, not on {on.isoformat()}")
    return None


def _licence_usable(licence: LicenseInfo, country: str, consignee_id: str, on: date) -> bool:
    return _licence_unusable_because(licence, country, consignee_id, on) is None


class _Books:
    """Balances as one request sees them: stored use plus earlier allowed lines."""

    def __init__(self, balances: BalanceView) -> None:
        self._balances = balances
        self._added: dict[BucketKey, int] = {}

    def used(self, bucket: BucketKey) -> int:
        return self._balances.get(bucket, Balance()).used + self._added.get(bucket, 0)

    def draw(self, draws: Iterable[Draw]) -> None:
        for d in draws:
            self._added[d.bucket] = self._added.get(d.bucket, 0) + d.tpp

    def footprint(self, operator: OperatorInfo) -> dict[str, int]:
        """The operator's TPP per country: stored + declared + earlier lines."""
        out = footprint_from_balances(self._balances, operator.id)
        for code, tpp in operator.footprint.items():
            out[code] = out.get(code, 0) + tpp
        for bucket, tpp in self._added.items():
            if bucket.kind == FOOTPRINT and bucket.operator_id == operator.id and bucket.country:
                out[bucket.country] = out.get(bucket.country, 0) + tpp
        return out

    def fit(self, rule: str, kind: str, bucket: BucketKey, cap: int, tpp: int,
            line: int) -> Draw | Violation:
        """A Draw when used + tpp <= cap, else the Violation naming the bucket."""
        used = self.used(bucket)
        if used + tpp <= cap:
            return Draw(bucket, tpp, cap)
        return reasons.cap_exceeded(rule, line, kind, bucket.key, cap, used, tpp)


def _licence_draw(
    rule: str, line: LineRequest, index: int, on: date, books: _Books, why_needed: str
) -> Draw | Violation:
    """The line's licence, usable and with `tpp` left on it (`why_needed`: for the reason
    given when no licence was sent)."""
    licence = line.license
    if licence is None:
        return reasons.licence_required(rule, index, line.destination_country, line.tpp,
                                        why_needed)
    bucket = license_bucket(licence)
    why_not = _licence_unusable_because(licence, line.destination_country, line.consignee.id, on)
    if why_not is not None:
        # A licence that does not cover this line grants it nothing: cap 0.
        return reasons.licence_not_usable(rule, index, licence.id, books.used(bucket), line.tpp,
                                          why_not)
    return books.fit(rule, LICENSE, bucket, licence.tpp, line.tpp, index)


def _decide_line(
    rule_set: RuleSet, index: int, line: LineRequest, on: date, books: _Books
) -> LineDecision:
    """Decide one line in the exact order of REGULATION.md "How one line is decided"."""
    t = line.tpp
    dest = line.destination_country
    operator = line.operator
    footprint = Draw(footprint_bucket(operator.id, dest), t, None)

    def allow(path: str, *capped: Draw) -> LineDecision:
        return LineDecision(index, t, path, (*capped, footprint))

    def deny(violations: Iterable[Violation]) -> LineDecision:
        return LineDecision(index, t, None, (), tuple(violations))

    # 1. Tier 3: destination, operator HQ or consignee country.
    party = _tier3_party(rule_set, (dest, operator.hq_country, line.consignee.country), on)
    if party is not None:
        role = _tier3_role(party, dest, operator.hq_country)
        if rule_set.tier3_treatment == "deny":
            return deny([reasons.tier3_denied(index, party, role, t)])
        licence = _licence_draw(TIER3, line, index, on, books,
                                f"{role} {party} is in a country group that needs one")
        return allow(PATH_LICENSE, licence) if isinstance(licence, Draw) else deny([licence])

    dest_tier = rule_set.tier(dest, on)
    # 2. UVEU: ratios over the whole footprint, no other cap.
    if _is_uveu(rule_set, operator):
        failed = uveu_violations(rule_set, operator, dest, t, books.footprint(operator), on, index)
        if failed:
            return deny(failed)
        return allow(PATH_TIER1 if dest_tier == 1 else PATH_UVEU)
    # 3. Tier 1: no cap.
    if dest_tier == 1:
        return allow(PATH_TIER1)

    failures: list[Violation] = []
    # 4. NVEU in its own country, within the schedule's cap for the date.
    if _is_nveu_for(rule_set, operator, dest):
        nveu = books.fit(NVEU, NVEU, nveu_bucket(operator.id, dest), rule_set.nveu_cap(on), t,
                         index)
        if isinstance(nveu, Draw):
            return allow(PATH_NVEU, nveu)
        failures.append(nveu)
    # 5. LPP: the consignee's (or its group's) calendar-year exemption.
    if rule_set.lpp is not None:
        lpp = books.fit(LPP, LPP, lpp_bucket(rule_set, line.consignee, on), rule_set.lpp.cap, t,
                        index)
        if isinstance(lpp, Draw):
            return allow(PATH_LPP, lpp)
        failures.append(lpp)
    # 6. Licence, drawing down the country allocation too.
    licence = _licence_draw(LICENSE, line, index, on, books,
                            f"{dest} is Tier 2 and no exemption or VEU cap covers the line")
    allocation: Draw | Violation | None = None
    if rule_set.country_allocation is not None:
        bucket = allocation_bucket(rule_set, dest)
        allocation = books.fit(
            LICENSE, COUNTRY_ALLOCATION, bucket, _allocation_cap(rule_set, dest, on), t, index
        )
    if isinstance(licence, Draw) and not isinstance(allocation, Violation):
        return allow(PATH_LICENSE, licence, *([allocation] if allocation else []))
    # 7. Deny, naming every constraint that failed.
    failures.extend(v for v in (licence, allocation) if isinstance(v, Violation))
    return deny(failures)


def _check_line(index: int, line: LineRequest) -> None:
    if not isinstance(line.tpp, int) or isinstance(line.tpp, bool) or line.tpp <= 0:
        raise PolicyInputError(f"line {index}: tpp {line.tpp!r} is not a positive int")
    if line.consignee.country != line.destination_country:
        raise PolicyInputError(
            f"line {index}: consignee {line.consignee.id!r} is in {line.consignee.country}, "
            f"not in the destination {line.destination_country}"
        )


def evaluate(
    rule_set: RuleSet, lines: Sequence[LineRequest], at: datetime, balances: BalanceView
) -> Decision:
    """Decide every line in order, each seeing the draws of earlier allowed lines.

    Guarantees: every line is decided (denials do not stop the others, so all
    violations are reported); a denied line draws nothing; an allowed line
    draws on each capped bucket it uses with `Draw.cap` filled, and on the
    operator's uncapped footprint bucket for its destination; for an allowed
    line, stored use + draws of this and earlier lines <= cap on every capped
    bucket. `balances` must hold the buckets of `needs()` (missing = unused);
    `at` is taken in UTC (naive = UTC). Raises PolicyInputError for a
    malformed line and UnknownCountryError for an unknown country code.
    """
    on = utc_date(at)
    books = _Books(balances)
    decided: list[LineDecision] = []
    for index, line in enumerate(lines):
        _check_line(index, line)
        decision = _decide_line(rule_set, index, line, on, books)
        if decision.allowed:
            books.draw(decision.draws)
        decided.append(decision)
    return Decision(rule_set.name, rule_set.version, tuple(decided))


def _line_buckets(rule_set: RuleSet, line: LineRequest, on: date) -> set[BucketKey]:
    dest = line.destination_country
    out = {footprint_bucket(line.operator.id, dest)}
    if line.license is not None:
        out.add(license_bucket(line.license))
    if rule_set.tier(dest, on) == 2:
        if rule_set.country_allocation is not None:
            out.add(allocation_bucket(rule_set, dest))
        if rule_set.lpp is not None:
            out.add(lpp_bucket(rule_set, line.consignee, on))
        if _is_nveu_for(rule_set, line.operator, dest):
            out.add(nveu_bucket(line.operator.id, dest))
    return out


def needs(rule_set: RuleSet, lines: Sequence[LineRequest], at: datetime) -> Needs:
    """Every bucket any of `lines` might read or draw on at `at`, and the UVEU operators.

    The service loads (and locks) these buckets, plus every footprint bucket
    of each operator in `footprint_of`, before calling `evaluate`.
    """
    on = utc_date(at)
    buckets: set[BucketKey] = set()
    for line in lines:
        buckets |= _line_buckets(rule_set, line, on)
    uveus = {line.operator.id for line in lines if _is_uveu(rule_set, line.operator)}
    return Needs(frozenset(buckets), frozenset(uveus))


def headroom_buckets(
    rule_set: RuleSet,
    country: str,
    operator: OperatorInfo | None,
    consignee: ConsigneeInfo | None,
    licenses: Sequence[LicenseInfo],
    at: datetime,
    footprint: Mapping[str, int] | None = None,
) -> list[HeadroomBucket]:
    """Every bucket that applies to a headroom query for `country` at `at`, unused ones included.

    Listed: the country allocation (Tier 2); the consignee's LPP bucket for
    the year (Tier 2, when a consignee is given); the NVEU bucket when the
    operator is an NVEU for `country`; each licence usable on the date for
    `country` (and for the consignee, if both name one); for a UVEU operator,
    one "uveu" entry per ratio a shipment to `country` can break, keyed by the
    share ("tier1", the home country, or `country` itself), whose bucket is
    the operator's footprint bucket for `country` and whose cap is the
    largest committed + held that bucket may reach under that ratio (so
    available = cap - committed - held). `footprint` is the operator's
    recorded committed + held per country (see `footprint_from_balances`);
    None counts only its declared footprint. A Tier 3 query lists nothing,
    or only licences when Tier 3 needs a licence.
    """
    on = utc_date(at)
    parties = (
        country,
        None if operator is None else operator.hq_country,
        None if consignee is None else consignee.country,
    )
    tier3 = _tier3_party(rule_set, parties, on) is not None
    if tier3 and rule_set.tier3_treatment == "deny":
        return []
    tier = rule_set.tier(country, on)
    out: list[HeadroomBucket] = []
    if not tier3 and tier == 2:
        if rule_set.country_allocation is not None:
            bucket = allocation_bucket(rule_set, country)
            cap = _allocation_cap(rule_set, country, on)
            out.append(HeadroomBucket(bucket, COUNTRY_ALLOCATION, bucket.key, cap))
        if rule_set.lpp is not None and consignee is not None:
            bucket = lpp_bucket(rule_set, consignee, on)
            out.append(HeadroomBucket(bucket, LPP, bucket.key, rule_set.lpp.cap))
        if operator is not None and _is_nveu_for(rule_set, operator, country):
            bucket = nveu_bucket(operator.id, country)
            out.append(HeadroomBucket(bucket, NVEU, bucket.key, rule_set.nveu_cap(on)))
    if tier3 or tier == 2:
        for licence in licenses:
            consignee_id = consignee.id if consignee is not None else licence.consignee_id or ""
            if _licence_usable(licence, country, consignee_id, on):
                bucket = license_bucket(licence)
                out.append(HeadroomBucket(bucket, LICENSE, licence.id, licence.tpp))
    if not tier3 and operator is not None and _is_uveu(rule_set, operator):
        bucket = footprint_bucket(operator.id, country)
        for share, cap in uveu_headroom(rule_set, operator, country, footprint or {}, on):
            out.append(HeadroomBucket(bucket, UVEU, share, cap))
    return out


def headroom_needs(
    rule_set: RuleSet,
    country: str,
    operator: OperatorInfo | None,
    consignee: ConsigneeInfo | None,
    licenses: Sequence[LicenseInfo],
    at: datetime,
) -> Needs:
    """The buckets whose balances a headroom query shows, and the UVEU whose footprint it needs.

    Load these (and every footprint bucket of `footprint_of`), then call
    `headroom_buckets` with `footprint=footprint_from_balances(...)`.
    """
    listed = headroom_buckets(rule_set, country, operator, consignee, licenses, at)
    uveu = (
        frozenset({operator.id})
        if operator is not None and _is_uveu(rule_set, operator)
        else frozenset()
    )
    return Needs(frozenset(entry.bucket for entry in listed), uveu)
