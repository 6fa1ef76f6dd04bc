"""The cap of a stored bucket at an instant: the one answer balances, alerts and
reconciliation use, so they can never disagree with the decision.

None means the bucket has no cap (footprint) or the rule set has no quota that
stores buckets of that kind; 0 means the quota exists but grants nothing at
that instant (a closed allocation window, a schedule not yet started): the
engine then denies, so everything else must show 0 too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ledger.policy.model import RuleSet, utc_date
from ledger.policy.quotas import stored_bucket_cap
from ledger.policy.types import LICENSE, BucketKey


def bucket_cap(
    rule_set: RuleSet, bucket: BucketKey, at: datetime, licence_tpp: Mapping[str, int]
) -> int | None:
    """The cap of `bucket` at `at` (UTC) under `rule_set`; `licence_tpp`: licence id -> TPP.

    A licence's cap is its quantity (None when the licence is not in `licence_tpp`);
    every other kind is asked of the rule set's quota of that kind (`quotas`).
    """
    if bucket.kind == LICENSE:
        return licence_tpp.get(bucket.key)
    return stored_bucket_cap(rule_set, bucket, utc_date(at))
