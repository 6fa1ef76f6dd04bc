"""The policy: rule sets as data and the pure engine that decides lines against them.

Import from here; the submodules are an implementation detail except for
`types` (the vocabulary shared with the ledger service).
"""

from ledger.policy.buckets import (
    allocation_bucket,
    footprint_bucket,
    footprint_from_balances,
    license_bucket,
    lpp_bucket,
    nveu_bucket,
)
from ledger.policy.engine import (
    PolicyInputError,
    country_tier,
    evaluate,
    headroom_buckets,
    headroom_needs,
    needs,
)
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

__all__ = [
    "Chip",
    "PolicyInputError",
    "RuleSet",
    "RuleSetError",
    "UnknownCountryError",
    "allocation_bucket",
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
    "needs",
    "nveu_bucket",
    "parse_rule_set",
    "utc_date",
]
