"""The policy: rule sets as data and the pure engine that decides lines against them.

Import from here; the submodules are an implementation detail except for
`types` (the vocabulary shared with the ledger service) and `caps`
(`bucket_cap`, the cap of a stored bucket at an instant).
"""

from ledger.policy.buckets import (
    allocation_bucket,
    footprint_bucket,
    footprint_from_balances,
    license_bucket,
    lpp_bucket,
    lpp_period,
    nveu_bucket,
)
from ledger.policy.caps import bucket_cap
from ledger.policy.conditions import uveu_eligibility_errors
from ledger.policy.engine import (
    PolicyInputError,
    country_tier,
    evaluate,
    needs,
)
from ledger.policy.headroom import headroom_buckets, headroom_needs
from ledger.policy.ruleset import (
    Chip,
    RuleSet,
    RuleSetError,
    UnknownCountryError,
    builtin_rule_sets,
    load_rule_set,
    parse_rule_set,
    utc_date,
)

operator_eligibility_errors = uveu_eligibility_errors
"""Why an operator cannot be registered as it is (AID-4: a UVEU headquartered outside
Tier 1); the API answers 422 with these. Empty when it can."""

__all__ = [
    "Chip",
    "PolicyInputError",
    "RuleSet",
    "RuleSetError",
    "UnknownCountryError",
    "allocation_bucket",
    "bucket_cap",
    "builtin_rule_sets",
    "country_tier",
    "evaluate",
    "footprint_bucket",
    "footprint_from_balances",
    "headroom_buckets",
    "headroom_needs",
    "license_bucket",
    "load_rule_set",
    "lpp_bucket",
    "lpp_period",
    "needs",
    "nveu_bucket",
    "operator_eligibility_errors",
    "parse_rule_set",
    "utc_date",
]
