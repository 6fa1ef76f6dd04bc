"""Bucket identities of the built-in kinds, for callers outside the engine.

The identities themselves are worked out in `quotas` (one place); these
functions ask it, so the ledger's LPP-year lookup, replay and tests name the
same buckets the decision draws on. Stored balances live under these keys,
so any change is a data migration, not a refactor.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from ledger.policy.conditions import Facts
from ledger.policy.model import RuleSet
from ledger.policy.quotas import bucket_of, period_bounds
from ledger.policy.types import (
    COUNTRY_ALLOCATION,
    FOOTPRINT,
    LICENSE,
    LPP,
    NVEU,
    Balance,
    BucketKey,
    ConsigneeInfo,
    LicenseInfo,
)


def allocation_bucket(rule_set: RuleSet, country: str, on: date | None = None) -> BucketKey:
    """A country's allocation bucket (period: its window's years, e.g. "2025-2027").

    Raises LookupError when the rule set has no country allocation.
    """
    found = rule_set.quota_of_kind(COUNTRY_ALLOCATION)
    if found is None:
        raise LookupError(f"rule set {rule_set.name} has no country allocation")
    day = on or rule_set.effective_from
    bucket = bucket_of(found[1], Facts(country, day, None, None))
    assert bucket is not None  # a country-scoped quota always has a bucket
    return bucket


def lpp_bucket(rule_set: RuleSet, consignee: ConsigneeInfo, on: date) -> BucketKey:
    """The low-volume exemption of `consignee` (or of its group) for the period of `on`.

    With group aggregation (scope "consignee_group"), affiliates share one bucket
    "group:<group_id>"; a consignee without a group (or a rule set that does not
    aggregate, or has no LPP) has "consignee:<id>" for the calendar year.
    """
    found = rule_set.quota_of_kind(LPP)
    if found is None:
        return BucketKey(LPP, key=f"consignee:{consignee.id}", period=str(on.year))
    bucket = bucket_of(found[1], Facts(consignee.country, on, None, consignee))
    assert bucket is not None  # a consignee-scoped quota with a consignee has a bucket
    return bucket


def lpp_period(rule_set: RuleSet, on: date) -> tuple[date, date] | None:
    """[start, end) of the LPP period containing `on` (the calendar year in AID-7); None
    when the rule set has no LPP. The ledger's "received this year" lookup uses this."""
    found = rule_set.quota_of_kind(LPP)
    return None if found is None else period_bounds(found[1], on)


def nveu_bucket(operator_id: str, country: str) -> BucketKey:
    """What an NVEU has received in its country on the nveu path, all time."""
    return BucketKey(
        NVEU, key=f"{operator_id}:{country}", period="all", operator_id=operator_id, country=country
    )


def license_bucket(license: LicenseInfo) -> BucketKey:
    """One licence's quantity, all time (its dates are checked, not bucketed)."""
    return BucketKey(LICENSE, key=license.id, period="all", country=license.country)


def footprint_bucket(operator_id: str, country: str) -> BucketKey:
    """Uncapped record of all TPP an operator received in one country (for UVEU ratios)."""
    return BucketKey(
        FOOTPRINT,
        key=f"{operator_id}:{country}",
        period="all",
        operator_id=operator_id,
        country=country,
    )


def footprint_from_balances(
    balances: Mapping[BucketKey, Balance], operator_id: str
) -> dict[str, int]:
    """Committed + held TPP per country over every footprint bucket of `operator_id`."""
    out: dict[str, int] = {}
    for bucket, balance in balances.items():
        if bucket.kind == FOOTPRINT and bucket.operator_id == operator_id and bucket.country:
            out[bucket.country] = out.get(bucket.country, 0) + balance.used
    return out
