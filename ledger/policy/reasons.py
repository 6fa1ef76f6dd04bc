"""Violations that explain themselves: each names the rule-set step that produced it and
says in one sentence why, for the person reading a denial.

`constraint` is a bucket kind when a cap binds (lpp, country_allocation, nveu,
uveu, license), or a rule: tier3 (no export at all), prohibited (presumption of
denial), license_required (no licence was given where one is needed). A line
that only lacks a licence is never reported as a cap that overflowed.
"""

from __future__ import annotations

from ledger.policy.types import (
    COUNTRY_ALLOCATION,
    LICENSE,
    LICENSE_REQUIRED,
    LPP,
    NVEU,
    UVEU,
    Violation,
)

_BUCKET_NAMES = {
    LPP: "low-processing-performance exemption of {key}",
    COUNTRY_ALLOCATION: "country allocation of {key}",
    NVEU: "NVEU cap of {key}",
    LICENSE: "licence {key}",
}


def cap_exceeded(rule: str, line: int, kind: str, key: str, cap: int, used: int,
                 requested: int, title: str | None = None) -> Violation:
    """A cap that binds: `used` + `requested` would exceed `cap` (`title`: the quota's name
    in words when the rule set gives one)."""
    name = (title + " of {key}" if title else _BUCKET_NAMES.get(kind, kind + " {key}")).format(
        key=key)
    left = max(0, cap - used)
    reason = (f"the {name} has {left:,} TPP left of {cap:,} "
              f"({used:,} used); the line asks for {requested:,}")
    return Violation(line, kind, key, cap, used, requested, rule, reason)


def uveu_share_exceeded(line: int, share: str, cap: int, held: int, requested: int,
                        max_pct: int) -> Violation:
    """A UVEU ratio: a Tier 2 country would hold more than `max_pct` % of the footprint."""
    reason = (f"a UVEU may hold at most {max_pct} % of its compute in one Tier 2 country; "
              f"{share} would hold {held:,} TPP, above the {cap:,} allowed")
    return Violation(line, UVEU, share, cap, held, requested, UVEU, reason)


def uveu_share_too_small(line: int, share: str, where: str, cap: int, outside: int,
                         requested: int, min_pct: int) -> Violation:
    """A UVEU minimum share (Tier 1, or the home country) would fall below `min_pct` %."""
    reason = (f"a UVEU must keep at least {min_pct} % of its compute in {where}; "
              f"the rest would hold {outside:,} TPP, above the {cap:,} allowed")
    return Violation(line, UVEU, share, cap, outside, requested, UVEU, reason)


def licence_not_usable(rule: str, line: int, licence_id: str, used: int, requested: int,
                       why: str) -> Violation:
    """A licence was given but does not cover this line: it grants it nothing (cap 0)."""
    reason = f"licence {licence_id} does not cover this line: {why}"
    return Violation(line, LICENSE, licence_id, 0, used, requested, rule, reason)


def licence_required(rule: str, line: int, key: str, requested: int, why: str) -> Violation:
    """No licence was given where the rule set requires one."""
    return Violation(line, LICENSE_REQUIRED, key, 0, 0, requested, rule,
                     f"a licence is required: {why}; none was given")


def prohibited(rule: str, line: int, constraint: str, key: str, requested: int,
               why: str) -> Violation:
    """No export is permitted (`tier3`) or there is a presumption of denial (`prohibited`)."""
    return Violation(line, constraint, key, 0, 0, requested, rule, why)


def not_permitted(line: int, destination: str, requested: int) -> Violation:
    """No step of the rule set allowed the line and none named a failure."""
    return Violation(line, "prohibited", destination, 0, 0, requested, "",
                     "no step of the rule set permits this line")
