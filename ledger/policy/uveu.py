"""UVEU footprint ratios (AID-4): the one place their arithmetic lives.

The percentages and who may be a UVEU are data ([uveu] in the rule-set file);
"Tier 1" and "Tier 2" here are the rule set's display tiers (`RuleSet.tier`).

A footprint is TPP per country (committed + unexpired holds + what the
operator declared before the ledger + earlier lines of the same request).
All comparisons are cross-multiplied integer forms, so
no division decides anything; divisions only report caps, rounded down.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from ledger.policy.model import RuleSet
from ledger.policy.reasons import uveu_share_exceeded, uveu_share_too_small
from ledger.policy.schema_rules import UveuSpec
from ledger.policy.types import OperatorInfo, Violation

TIER1_SHARE = "tier1"


def _spec(rule_set: RuleSet) -> UveuSpec:
    if rule_set.uveu is None:
        raise LookupError(f"rule set {rule_set.name} has no UVEU ratios")
    return rule_set.uveu


def _max_share_cap(pct: int, rest: int) -> int:
    """Largest s with 100*s <= pct*(rest + s): the most one capped share may hold."""
    return pct * rest // (100 - pct)


def _min_share_cap(pct: int, share: int) -> int:
    """Largest o with 100*share >= pct*(share + o): the most the rest may hold."""
    return (100 - pct) * share // pct


def uveu_violations(
    rule_set: RuleSet,
    operator: OperatorInfo,
    destination: str,
    tpp: int,
    footprint: Mapping[str, int],
    on: date,
    line: int,
) -> list[Violation]:
    """Every UVEU ratio that fails once `tpp` is added to `footprint` in `destination`.

    `footprint` is the operator's TPP per country before this line. Ratios:
    for every Tier 2 country X, 100*in(X) <= max_pct*total; 100*in(Tier 1) >=
    tier1_min_pct*total; for an operator headquartered in a country with a
    home minimum, 100*in(home) >= home_pct*total.

    Reporting (all exact ints, `used > cap` exactly when the ratio fails):
    for a Tier 2 country, key = the country, cap = the most it may hold given
    the rest of the footprint, used = what it would hold; for a minimum share
    (key "tier1" or the home country), cap = the most the footprint OUTSIDE
    that share may hold given the share, used = what it would hold.
    """
    spec = _spec(rule_set)
    after = dict(footprint)
    after[destination] = after.get(destination, 0) + tpp
    total = sum(after.values())
    tiers = {country: rule_set.tier(country, on) for country in after}
    out: list[Violation] = []

    max_pct = spec.tier2_max_pct
    for country in sorted(after):
        held = after[country]
        if tiers[country] == 2 and 100 * held > max_pct * total:
            cap = _max_share_cap(max_pct, total - held)
            out.append(uveu_share_exceeded(line, country, cap, held, tpp, max_pct))

    in_tier1 = sum(v for country, v in after.items() if tiers[country] == 1)
    tier1_pct = spec.tier1_min_pct
    if 100 * in_tier1 < tier1_pct * total:
        cap = _min_share_cap(tier1_pct, in_tier1)
        out.append(uveu_share_too_small(line, TIER1_SHARE, "Tier 1 countries", cap,
                                        total - in_tier1, tpp, tier1_pct))

    home = operator.hq_country
    home_pct = spec.home_min_pct.get(home)
    if home_pct is not None:
        in_home = after.get(home, 0)
        if 100 * in_home < home_pct * total:
            cap = _min_share_cap(home_pct, in_home)
            out.append(uveu_share_too_small(line, home, home, cap, total - in_home, tpp, home_pct))
    return out


def uveu_headroom(
    rule_set: RuleSet,
    operator: OperatorInfo,
    country: str,
    recorded: Mapping[str, int],
    on: date,
) -> list[tuple[str, int]]:
    """(share, cap) for each UVEU ratio a shipment to `country` can break.

    `recorded` is the operator's committed + held TPP per country in the
    ledger (its footprint buckets); the declared pre-ledger footprint is added
    here. Each cap is expressed on the operator's footprint bucket for
    `country`: the largest committed + held that bucket may reach while that
    one ratio still holds, every other country fixed. So cap - committed -
    held is how much more may go to `country` under that ratio (never below
    zero: a ratio already broken leaves cap = current use). Ratios that a
    shipment to `country` can only relax are not listed.
    """
    spec = _spec(rule_set)
    totals = dict(recorded)
    for code, tpp in operator.footprint.items():
        totals[code] = totals.get(code, 0) + tpp
    total = sum(totals.values())
    tier = rule_set.tier(country, on)
    room: list[tuple[str, int]] = []
    if tier == 2 and spec.tier2_max_pct < 100:
        pct = spec.tier2_max_pct
        # 100*(a + t) <= pct*(total + t)  <=>  t <= (pct*total - 100*a) / (100 - pct)
        room.append((country, (pct * total - 100 * totals.get(country, 0)) // (100 - pct)))
    if tier != 1 and spec.tier1_min_pct > 0:
        pct = spec.tier1_min_pct
        in_tier1 = sum(v for code, v in totals.items() if rule_set.tier(code, on) == 1)
        # 100*s >= pct*(total + t)  <=>  t <= (100*s - pct*total) / pct
        room.append((TIER1_SHARE, (100 * in_tier1 - pct * total) // pct))
    home = operator.hq_country
    home_pct = spec.home_min_pct.get(home)
    if home_pct and country != home:
        room.append((home, (100 * totals.get(home, 0) - home_pct * total) // home_pct))
    here = recorded.get(country, 0)
    return [(share, here + max(0, more)) for share, more in room]
