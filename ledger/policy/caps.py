"""The cap of a stored bucket at an instant: the one answer balances, alerts and
reconciliation use, so they can never disagree with the decision.

None means the bucket has no cap (footprint) or the rule set has no such quota;
0 means the quota exists but grants nothing at that instant (a closed
allocation window, a schedule not yet started): the engine then denies, so
everything else must show 0 too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ledger.policy.ruleset import RuleSet
from ledger.policy.types import COUNTRY_ALLOCATION, LICENSE, LPP, NVEU, BucketKey


def bucket_cap(
    rule_set: RuleSet, bucket: BucketKey, at: datetime, licence_tpp: Mapping[str, int]
) -> int | None:
    """The cap of `bucket` at `at` under `rule_set`; `licence_tpp` maps licence id -> TPP."""
    if bucket.kind == LICENSE:
        return licence_tpp.get(bucket.key)
    if bucket.kind == LPP:
        return None if rule_set.lpp is None else rule_set.lpp.cap
    if bucket.kind == NVEU:
        return None if rule_set.nveu is None else rule_set.nveu_cap(at)
    if bucket.kind == COUNTRY_ALLOCATION:
        if rule_set.country_allocation is None:
            return None
        return rule_set.allocation_cap(bucket.key) if rule_set.allocation_open(at) else 0
    return None
