"""Bucket identities: the one place that decides what (kind, key, period) a quota has.

The service stores balances under exactly these keys, so any change here is
a data migration, not a refactor.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from ledger.policy.ruleset import RuleSet
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


def allocation_bucket(rule_set: RuleSet, country: str) -> BucketKey:
    """A Tier 2 country's allocation over the rule set's window (period "2025-2027")."""
    return BucketKey(
        COUNTRY_ALLOCATION, key=country, period=rule_set.allocation_period(), country=country
    )


def lpp_bucket(rule_set: RuleSet, consignee: ConsigneeInfo, on: date) -> BucketKey:
    """The low-volume exemption of `consignee` (or of its group) for the calendar year of `on`.

    With aggregation on, affiliates share one bucket "group:<group_id>"; a
    consignee without a group (or with aggregation off) has "consignee:<id>".
    """
    lpp = rule_set.lpp
    aggregate = lpp is not None and lpp.aggregate_groups
    if aggregate and consignee.group_id:
        key = f"group:{consignee.group_id}"
    else:
        key = f"consignee:{consignee.id}"
    # No country scope: one group's affiliates may sit in different countries
    # and must still share the one bucket.
    return BucketKey(LPP, key=key, period=str(on.year))


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
