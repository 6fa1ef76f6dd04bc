"""Whether a step's (or a quota's) conditions hold for one line or one headroom query.

Three-valued: a condition holds, does not, or may hold (`None`) when the query
lacks the fact it tests (a headroom query names no chip). A line always
knows its facts; a line given as raw TPP has no chip, so a chip test does not
hold for it (fail closed: e.g. USC-7's licence-only case needs a chip shown
to be under the thresholds).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from functools import cached_property

from ledger.policy.catalog import Chip
from ledger.policy.model import RuleSet
from ledger.policy.schema_rules import ChipTest, Condition, StepSpec
from ledger.policy.types import ConsigneeInfo, OperatorInfo
from ledger.units import exact


@dataclass(frozen=True)
class Facts:
    """What conditions are tested against: a line, or a headroom query (`chip_known` False)."""

    destination: str
    on: date
    operator: OperatorInfo | None
    consignee: ConsigneeInfo | None
    chip: Chip | None = None
    chip_known: bool = True

    def key(self) -> tuple[object, ...]:
        """Every fact a condition can test, hashable: the key of memoized answers
        (RuleSet.memo). A new field of the facts or of a party must be added here."""
        return self._key

    @cached_property
    def _key(self) -> tuple[object, ...]:  # computed once per facts (they are frozen)
        op, cons = self.operator, self.consignee
        op_key = None if op is None else (
            op.id, op.hq_country, op.veu_type, op.veu_country, op.parent_country,
            tuple(sorted(op.footprint.items())))
        return (self.destination, self.on, op_key, cons,
                None if self.chip is None else self.chip.id, self.chip_known)


@dataclass(frozen=True)
class Match:
    holds: bool | None  # None: may hold (a fact the query lacks)
    key: str | None = None  # the country that made it hold (destination or a party's HQ)
    why: str = ""  # in words, for the violation's reason


NO = Match(False)
YES = Match(True)


def uveu_eligibility_errors(rule_set: RuleSet, operator: OperatorInfo, on: date) -> list[str]:
    """Why `operator` cannot be a UVEU under `rule_set` on `on` (empty: it can, or it is no
    UVEU, or the rule set has no UVEU). AID-4: a UVEU and its ultimate parent must be
    headquartered in the rule set's `uveu.headquarters_in` group (Tier 1)."""
    spec = rule_set.uveu
    if operator.veu_type != "UVEU" or spec is None:
        return []
    group = rule_set.group(spec.headquarters_in)
    places = [("headquarters", operator.hq_country)]
    if operator.parent_hq != operator.hq_country:
        places.append(("ultimate parent's headquarters", operator.parent_hq))
    return [f"a UVEU must be headquartered in {group.title} ({spec.rule}); "
            f"its {what} {country} is not"
            for what, country in places if not rule_set.in_group(country, spec.headquarters_in, on)]


def is_uveu(rule_set: RuleSet, operator: OperatorInfo | None, on: date) -> bool:
    """A UVEU the rule set recognises: it has UVEU ratios and the operator is eligible."""
    return (operator is not None and operator.veu_type == "UVEU" and rule_set.uveu is not None
            and not uveu_eligibility_errors(rule_set, operator, on))


def _party_countries(cond: Condition, facts: Facts, all_parties: bool) -> Iterator[tuple[str, str]]:
    """(role in words, country) of each headquarters and ultimate parent the test looks at."""
    op, cons = facts.operator, facts.consignee
    for party in cond.parties:
        if party == "operator" and op is not None:
            yield "the operator's headquarters", op.hq_country
            if op.parent_hq != op.hq_country:
                yield "the operator's ultimate parent's headquarters", op.parent_hq
        elif party == "consignee":
            if cons is not None:
                yield "the consignee's headquarters", cons.hq
                if cons.parent_hq != cons.hq:
                    yield "the consignee's ultimate parent's headquarters", cons.parent_hq
            elif all_parties:  # a query without a consignee: one located at the destination
                yield "the consignee's headquarters", facts.destination


def _is(rule_set: RuleSet, group: str) -> str:
    spec = rule_set.group(group)
    return spec.member_phrase or f"in {spec.title}"


def _chip_value(chip: Chip, test: ChipTest) -> Fraction | None:
    if test.attribute == "tpp":
        return Fraction(chip.tpp)
    if test.attribute == "dram_bandwidth_gbs":
        return None if chip.dram_bandwidth_gbs is None else Fraction(chip.dram_bandwidth_gbs)
    return chip.performance_density


def _compare(value: Fraction, op: str, bound: Fraction) -> bool:
    return {"<": value < bound, "<=": value <= bound, ">": value > bound,
            ">=": value >= bound, "==": value == bound}[op]


def _chip_match(cond: Condition, facts: Facts) -> Match:
    if not cond.chip and not cond.chip_class_in:
        return YES
    chip = facts.chip
    unknown = Match(None) if not facts.chip_known else NO
    if chip is None:
        return unknown
    for test in cond.chip:
        value = _chip_value(chip, test)
        if value is None:
            return unknown
        if not _compare(value, test.op, exact(test.value)):
            return NO
    if cond.chip_class_in:
        cls = chip.classification
        if cls is None:
            return unknown
        if cls not in cond.chip_class_in:
            return NO
    return Match(True, why=f"the chip {chip.id} meets the step's chip tests")


def _all(matches: Iterable[Match]) -> Match:
    found: list[Match] = []
    for m in matches:
        if m.holds is False:
            return NO
        found.append(m)
    if any(m.holds is None for m in found):
        return Match(None)
    explained = next((m for m in found if m.why), YES)
    return Match(True, explained.key, explained.why)


def condition_holds(rule_set: RuleSet, cond: Condition, facts: Facts) -> Match:
    """Every test of `cond` holds (tri-state; see the module docstring)."""
    dest, on = facts.destination, facts.on
    parts: list[Match] = []
    if cond.destination_in:
        group = rule_set.in_any(dest, cond.destination_in, on)
        if group is None:
            return NO
        parts.append(Match(True, dest, f"the destination {dest} is {_is(rule_set, group)}"))
    if cond.destination_not_in and rule_set.in_any(dest, cond.destination_not_in, on):
        return NO
    if cond.party_hq_in:
        hit = None
        for role, country in _party_countries(cond, facts, all_parties=False):
            group = rule_set.in_any(country, cond.party_hq_in, on)
            if group is not None:
                hit = Match(True, country, f"{role} {country} is {_is(rule_set, group)}")
                break
        if hit is None:
            return NO
        parts.append(hit)
    if cond.parties_hq_all_in:
        for _role, country in _party_countries(cond, facts, all_parties=True):
            if rule_set.in_any(country, cond.parties_hq_all_in, on) is None:
                return NO
    if cond.veu is not None:
        op = facts.operator
        uveu = is_uveu(rule_set, op, on)
        nveu = op is not None and op.veu_type == "NVEU" and op.veu_country == dest
        veu = "uveu" if uveu else "nveu" if nveu else "none"
        if veu != cond.veu:
            return NO
    if cond.authorised is not None:
        op_id = None if facts.operator is None else facts.operator.id
        cons_id = None if facts.consignee is None else facts.consignee.id
        if not rule_set.entity_covers(cond.authorised, op_id, cons_id, dest, on):
            return NO
        title = rule_set.entity(cond.authorised).title
        parts.append(Match(True, dest, f"a party is authorised as one of the {title}"))
    parts.append(_chip_match(cond, facts))
    return _all(parts)


def step_holds(rule_set: RuleSet, step: StepSpec, facts: Facts) -> Match:
    """`when` holds and, when `any_of` is given, one of its conditions holds."""
    when = condition_holds(rule_set, step.when, facts)
    if when.holds is False or not step.any_of:
        return when
    options = [condition_holds(rule_set, c, facts) for c in step.any_of]
    chosen = next((m for m in options if m.holds), None)
    if chosen is None:
        return Match(None) if any(m.holds is None for m in options) else NO
    return _all([when, chosen])
