"""Which decision steps a line (or a headroom query) can reach, and licence validity.

`reachable` is the one walk over a rule set's steps that the decision, `needs`
and headroom all follow, so they cannot disagree on which buckets apply: it
yields each step whose conditions hold (or may hold, for a query that lacks a
fact) up to the first step that certainly holds and decides every line that
reaches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from ledger.policy.conditions import Facts, Match, step_holds
from ledger.policy.model import RuleSet
from ledger.policy.schema_rules import StepSpec
from ledger.policy.types import LicenseInfo


def ends_the_walk(step: StepSpec) -> bool:
    """A step that decides every line it applies to: nothing after it is reached."""
    if step.outcome != "allowed":
        return True
    return step.on_fail == "deny" or (not step.quotas and step.ratios is None)


def reachable(rule_set: RuleSet, facts: Facts) -> tuple[tuple[StepSpec, Match], ...]:
    """Steps whose conditions hold or may hold, in order, up to the first that ends the walk
    (pure: remembered per rule set and facts)."""
    return rule_set.memo("reachable", facts.key(), lambda: tuple(_walk(rule_set, facts)))


def _walk(rule_set: RuleSet, facts: Facts) -> Iterator[tuple[StepSpec, Match]]:
    for step in rule_set.steps:
        match = step_holds(rule_set, step, facts)
        if match.holds is False:
            continue
        yield step, match
        if match.holds and ends_the_walk(step):
            return


def licence_unusable_because(
    licence: LicenseInfo, country: str, consignee_id: str | None, on: date
) -> str | None:
    """None when the licence is valid on `on` (both ends inclusive), for `country`, and for
    the consignee if it names one (AID-9, PRS-6); else why not. `consignee_id` None: any."""
    if licence.country != country:
        return f"it is for {licence.country}, not {country}"
    if (licence.consignee_id is not None and consignee_id is not None
            and licence.consignee_id != consignee_id):
        return f"it names consignee {licence.consignee_id}, not {consignee_id}"
    if not licence.valid_from <= on <= licence.valid_to:
        return (f"it is valid from {licence.valid_from.isoformat()} to "
                f"{licence.valid_to.isoformat()}, not on {on.isoformat()}")
    return None
