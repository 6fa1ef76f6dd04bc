"""Quotas: the one place a bucket's identity, period and cap at an instant are worked out.

Bucket identities are stored (balances live under them), so for the built-in
kinds they must never change: lpp "consignee:<id>" / "group:<gid>" with the
calendar year ("2025"); country_allocation "<CC>" with its window's years
("2025-2027"); nveu "<op>:<CC>" with "all". A sub-quota (an entity's share
inside a quota) is the parent's bucket with "/<entity>" appended to its key
(ids never contain "/").

Units: caps are compared in TPP. A cap counted in equivalents of a reference
chip is N x that chip's TPP, an exact integer product, so no division ever
decides a draw (a line of t TPP is t / ref equivalents, fractional when need be).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ledger.policy.conditions import Facts, condition_holds
from ledger.policy.model import RuleSet
from ledger.policy.schema_rules import EquivalentsUnit, QuotaSpec
from ledger.policy.types import BucketKey

SUB_QUOTA_SEPARATOR = "/"


@dataclass(frozen=True)
class QuotaBucket:
    """A bucket a line or query may draw on, with its cap at the date asked."""

    quota: str  # the quota's name in the file
    bucket: BucketKey
    cap: int


def period_label(quota: QuotaSpec, on: date) -> str:
    """The period part of the bucket identity for a date."""
    if quota.period == "calendar_year":
        return str(on.year)
    if quota.period == "quarter":
        return f"{on.year}Q{(on.month - 1) // 3 + 1}"
    if quota.period == "window":
        assert quota.window is not None  # validated with the file
        return f"{quota.window.from_.year}-{quota.window.to.year}"
    return "all"


def period_bounds(quota: QuotaSpec, on: date) -> tuple[date, date] | None:
    """[start, end) of the period containing `on`; None for a period without bounds."""
    if quota.period == "calendar_year":
        return date(on.year, 1, 1), date(on.year + 1, 1, 1)
    if quota.period == "quarter":
        first = 3 * ((on.month - 1) // 3) + 1
        end = date(on.year + 1, 1, 1) if first == 10 else date(on.year, first + 3, 1)
        return date(on.year, first, 1), end
    if quota.period == "window":
        assert quota.window is not None
        return quota.window.from_, date.fromordinal(quota.window.to.toordinal() + 1)
    return None


def _unit_tpp(rule_set: RuleSet, quota: QuotaSpec) -> int:
    """TPP of one unit of the cap: 1, or the reference chip's TPP."""
    if isinstance(quota.unit, EquivalentsUnit):
        tpp = rule_set.chip_tpp(quota.unit.equivalents_of)
        assert tpp is not None  # the reference chip is checked when the file loads
        return tpp
    return 1


def _open(quota: QuotaSpec, on: date) -> bool:
    # Outside its window a quota grants nothing: the rule names no quota for other
    # dates, and an unknown quota must not fail open (AID-8).
    return quota.window is None or quota.window.from_ <= on <= quota.window.to


def cap_at(rule_set: RuleSet, quota: QuotaSpec, country: str | None, on: date) -> int:
    """The quota's cap in TPP on `on` for a bucket of `country` (multipliers by group)."""
    if not _open(quota, on):
        return 0
    if quota.cap is not None:
        amount = quota.cap
    else:  # a schedule: the last step started on or before `on`; nothing before the first
        amount = 0
        for step in quota.schedule:
            if step.start <= on:
                amount = step.cap
    if country is not None:
        for group, factor in quota.multipliers.items():
            if rule_set.in_group(country, group, on):
                amount *= factor
    return amount * _unit_tpp(rule_set, quota)


def bucket_of(quota: QuotaSpec, facts: Facts) -> BucketKey | None:
    """The bucket of `quota` a line (or query) with these facts uses; None when the
    scope's party is not known (a query without a consignee has no LPP bucket)."""
    dest, op, cons = facts.destination, facts.operator, facts.consignee
    period = period_label(quota, facts.on)
    if quota.scope in ("consignee", "consignee_group"):
        if cons is None:
            return None
        if quota.scope == "consignee_group" and cons.group_id:
            # No country scope: one group's affiliates may sit in different countries
            # and must still share the one bucket.
            return BucketKey(quota.kind, f"group:{cons.group_id}", period)
        return BucketKey(quota.kind, f"consignee:{cons.id}", period)
    if quota.scope == "operator_country":
        if op is None:
            return None
        return BucketKey(quota.kind, f"{op.id}:{dest}", period, operator_id=op.id, country=dest)
    if quota.scope == "country":
        return BucketKey(quota.kind, dest, period, country=dest)
    assert quota.entity is not None  # scope "entity", validated with the file
    return BucketKey(quota.kind, quota.entity, period)


def _party_in(rule_set: RuleSet, entity: str, facts: Facts) -> bool:
    return rule_set.entity_covers(
        entity, None if facts.operator is None else facts.operator.id,
        None if facts.consignee is None else facts.consignee.id, facts.destination, facts.on)


def applicable(rule_set: RuleSet, name: str, facts: Facts) -> tuple[QuotaBucket, ...]:
    """The buckets quota `name` puts on a line (or query): its own, then each sub-quota
    of an entity the line's parties belong to. Empty when it does not apply. (Pure:
    remembered per rule set, quota and facts.)"""
    return rule_set.memo("applicable", (name, facts.key()),
                         lambda: tuple(_applicable(rule_set, name, facts)))


def _applicable(rule_set: RuleSet, name: str, facts: Facts) -> list[QuotaBucket]:
    quota = rule_set.quota(name)
    if condition_holds(rule_set, quota.applies_when, facts).holds is False:
        return []
    if quota.scope == "entity" and quota.entity and not _party_in(rule_set, quota.entity, facts):
        return []
    bucket = bucket_of(quota, facts)
    if bucket is None:
        return []
    out = [QuotaBucket(name, bucket, cap_at(rule_set, quota, bucket.country, facts.on))]
    for sub in quota.sub_quotas:
        if _party_in(rule_set, sub.entity, facts):
            key = f"{bucket.key}{SUB_QUOTA_SEPARATOR}{sub.entity}"
            cap = sub.cap * _unit_tpp(rule_set, quota) if _open(quota, facts.on) else 0
            sub_bucket = BucketKey(quota.kind, key, bucket.period, bucket.operator_id,
                                   bucket.country)
            out.append(QuotaBucket(name, sub_bucket, cap))
    return out


def stored_bucket_cap(rule_set: RuleSet, bucket: BucketKey, on: date) -> int | None:
    """The cap of a stored bucket of a rule-set quota on `on`; None when no quota of the
    rule set stores buckets of that kind (or that sub-quota)."""
    found = rule_set.quota_of_kind(bucket.kind)
    if found is None:
        return None
    _name, quota = found
    if SUB_QUOTA_SEPARATOR in bucket.key:
        entity = bucket.key.rsplit(SUB_QUOTA_SEPARATOR, 1)[1]
        sub = next((s for s in quota.sub_quotas if s.entity == entity), None)
        if sub is None:
            return None
        return sub.cap * _unit_tpp(rule_set, quota) if _open(quota, on) else 0
    return cap_at(rule_set, quota, bucket.country, on)
