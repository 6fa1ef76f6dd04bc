"""The pure policy engine: request + balances -> decision. No I/O, no clock, no storage.

A line is decided by walking the rule set's steps in order (`steps.reachable`):
the first step whose conditions hold and that can decide the line does. An
`allowed` step whose quota does not fit records the violation and the walk
goes on (AID-10: NVEU, then LPP, then licence); a `license_required` or
`prohibited` step, or one that fails with on_fail = "deny", ends it; a line no
step allows is denied naming every failure.

Invariant kept here (and tested by property tests): when a decision is
allowed, for every capped bucket it draws on, the stored use plus all the
request's draws on that bucket never exceeds the bucket's cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime

from ledger.policy import reasons
from ledger.policy.buckets import footprint_bucket, footprint_from_balances, license_bucket
from ledger.policy.conditions import Facts, Match, is_uveu
from ledger.policy.headroom import headroom_buckets, headroom_needs
from ledger.policy.model import RuleSet, utc_date
from ledger.policy.quotas import applicable
from ledger.policy.schema_rules import StepSpec
from ledger.policy.steps import licence_unusable_because, reachable
from ledger.policy.types import (
    PATH_LICENSE,
    UVEU,
    Balance,
    BalanceView,
    BucketKey,
    Decision,
    Draw,
    LineDecision,
    LineRequest,
    Needs,
    OperatorInfo,
    Violation,
)
from ledger.policy.uveu import uveu_violations

__all__ = ["PolicyInputError", "country_tier", "evaluate", "headroom_buckets", "headroom_needs",
           "line_buckets", "needs"]


class PolicyInputError(ValueError):
    """A line the engine cannot decide because it is malformed (the API answers 422)."""


def country_tier(rule_set: RuleSet, country: str, on: date | datetime) -> int:
    """The tier (1, 2 or 3) of `country` on the UTC date of `on`.

    Raises UnknownCountryError for a code that is not ISO 3166-1 alpha-2.
    """
    return rule_set.tier(country, on)


def line_facts(rule_set: RuleSet, line: LineRequest, on: date) -> Facts:
    chip = None if line.chip is None else rule_set.chip(line.chip)
    return Facts(line.destination_country, on, line.operator, line.consignee, chip)


class _Books:
    """Balances as one request sees them: stored use plus earlier allowed lines."""

    def __init__(self, balances: BalanceView) -> None:
        self._balances = balances
        self._added: dict[BucketKey, int] = {}

    def used(self, bucket: BucketKey) -> int:
        return self._balances.get(bucket, Balance()).used + self._added.get(bucket, 0)

    def draw(self, draws: Iterable[Draw]) -> None:
        for d in draws:
            self._added[d.bucket] = self._added.get(d.bucket, 0) + d.tpp

    def footprint(self, operator: OperatorInfo) -> dict[str, int]:
        """The operator's TPP per country: stored + declared + earlier lines."""
        out = footprint_from_balances(self._balances, operator.id)
        for code, tpp in operator.footprint.items():
            out[code] = out.get(code, 0) + tpp
        for bucket, tpp in self._added.items():
            if bucket.kind == "footprint" and bucket.operator_id == operator.id and bucket.country:
                out[bucket.country] = out.get(bucket.country, 0) + tpp
        return out

    def fit(self, rule: str, bucket: BucketKey, cap: int, tpp: int, line: int,
            title: str | None = None) -> Draw | Violation:
        """A Draw when used + tpp <= cap, else the Violation naming the bucket."""
        used = self.used(bucket)
        if used + tpp <= cap:
            return Draw(bucket, tpp, cap)
        return reasons.cap_exceeded(rule, line, bucket.kind, bucket.key, cap, used, tpp, title)


def _cite(violation: Violation, step: StepSpec) -> Violation:
    """The violation's reason ends with the rule id the step implements (e.g. "(AID-7)")."""
    return replace(violation, reason=f"{violation.reason} ({step.rule})")


class _Line:
    """One line being decided: its facts, the request's books and its failures so far."""

    def __init__(self, rule_set: RuleSet, index: int, line: LineRequest, on: date,
                 books: _Books) -> None:
        self.rule_set, self.index, self.line, self.on, self.books = (
            rule_set, index, line, on, books)
        self.facts = line_facts(rule_set, line, on)
        self.footprint = Draw(footprint_bucket(line.operator.id, line.destination_country),
                              line.tpp, None)
        self.failures: list[Violation] = []

    def allow(self, path: str, draws: Sequence[Draw]) -> LineDecision:
        return LineDecision(self.index, self.line.tpp, path, (*draws, self.footprint))

    def deny(self, more: Iterable[Violation] = ()) -> LineDecision:
        failures = [*self.failures, *more]
        if not failures:
            failures = [reasons.not_permitted(self.index, self.line.destination_country,
                                              self.line.tpp)]
        return LineDecision(self.index, self.line.tpp, None, (), tuple(failures))

    def quotas(self, step: StepSpec) -> tuple[list[Draw], list[Violation]]:
        draws: list[Draw] = []
        failed: list[Violation] = []
        for name in step.quotas:
            title = self.rule_set.quota(name).title
            for qb in applicable(self.rule_set, name, self.facts):
                got = self.books.fit(step.id, qb.bucket, qb.cap, self.line.tpp, self.index, title)
                if isinstance(got, Draw):
                    draws.append(got)
                else:
                    failed.append(_cite(got, step))
        return draws, failed

    def licence(self, step: StepSpec, match: Match) -> Draw | Violation:
        """The line's licence, usable and with its TPP left (AID-9, PRS-6)."""
        line, licence = self.line, self.line.license
        if licence is None:
            why = f"{match.why}: {step.reason}" if match.why else step.reason
            return _cite(reasons.licence_required(step.id, self.index, line.destination_country,
                                                  line.tpp, why), step)
        bucket = license_bucket(licence)
        why_not = licence_unusable_because(licence, line.destination_country,
                                           line.consignee.id, self.on)
        if why_not is not None:
            # A licence that does not cover this line grants it nothing: cap 0.
            return _cite(reasons.licence_not_usable(step.id, self.index, licence.id,
                                                    self.books.used(bucket), line.tpp, why_not),
                         step)
        got = self.books.fit(step.id, bucket, licence.tpp, line.tpp, self.index)
        return got if isinstance(got, Draw) else _cite(got, step)

    def ratios(self, step: StepSpec) -> list[Violation]:
        op = self.line.operator
        failed = uveu_violations(self.rule_set, op, self.line.destination_country,
                                 self.line.tpp, self.books.footprint(op), self.on, self.index)
        return [_cite(replace(v, rule=step.id), step) for v in failed]


def _decide_line(rule_set: RuleSet, index: int, line: LineRequest, on: date,
                 books: _Books) -> LineDecision:
    state = _Line(rule_set, index, line, on, books)
    for step, match in reachable(rule_set, state.facts):
        if step.outcome == "prohibited":
            why = f"{match.why}: {step.reason}" if match.why else step.reason
            key = match.key or line.destination_country
            return state.deny([_cite(reasons.prohibited(step.id, index, step.denial_constraint,
                                                        key, line.tpp, why), step)])
        draws, failed = state.quotas(step)
        if step.outcome == "license_required":
            licence = state.licence(step, match)
            if isinstance(licence, Draw) and not failed:
                return state.allow(PATH_LICENSE, [licence, *draws])
            bad = [licence] if isinstance(licence, Violation) else []
            return state.deny([*bad, *failed])
        if step.ratios == UVEU:
            failed += state.ratios(step)
        assert step.path is not None  # an allowed step has a path (validated with the file)
        if not failed:
            return state.allow(step.path, draws)
        if step.on_fail == "deny":
            return state.deny(failed)
        state.failures.extend(failed)
    return state.deny()


def _check_line(index: int, line: LineRequest) -> None:
    if not isinstance(line.tpp, int) or isinstance(line.tpp, bool) or line.tpp <= 0:
        raise PolicyInputError(f"line {index}: tpp {line.tpp!r} is not a positive int")
    if line.consignee.country != line.destination_country:
        raise PolicyInputError(
            f"line {index}: consignee {line.consignee.id!r} is in {line.consignee.country}, "
            f"not in the destination {line.destination_country}"
        )


def evaluate(
    rule_set: RuleSet, lines: Sequence[LineRequest], at: datetime, balances: BalanceView
) -> Decision:
    """Decide every line in order, each seeing the draws of earlier allowed lines.

    Guarantees: every line is decided (denials do not stop the others, so all
    violations are reported); a denied line draws nothing; an allowed line
    draws on each capped bucket it uses with `Draw.cap` filled, and on the
    operator's uncapped footprint bucket for its destination; for an allowed
    line, stored use + draws of this and earlier lines <= cap on every capped
    bucket. `balances` must hold the buckets of `needs()` (missing = unused);
    `at` is taken in UTC (naive = UTC). Raises PolicyInputError for a
    malformed line and UnknownCountryError for an unknown country code.
    """
    on = utc_date(at)
    books = _Books(balances)
    decided: list[LineDecision] = []
    for index, line in enumerate(lines):
        _check_line(index, line)
        decision = _decide_line(rule_set, index, line, on, books)
        if decision.allowed:
            books.draw(decision.draws)
        decided.append(decision)
    return Decision(rule_set.name, rule_set.version, tuple(decided))


def line_buckets(rule_set: RuleSet, line: LineRequest, on: date) -> set[BucketKey]:
    """Every bucket the steps `line` can reach may draw on, its licence and its footprint."""
    facts = line_facts(rule_set, line, on)
    out = {footprint_bucket(line.operator.id, line.destination_country)}
    if line.license is not None:
        out.add(license_bucket(line.license))
    for step, _match in reachable(rule_set, facts):
        for name in step.quotas:
            out.update(qb.bucket for qb in applicable(rule_set, name, facts))
    return out


def needs(rule_set: RuleSet, lines: Sequence[LineRequest], at: datetime) -> Needs:
    """Every bucket any of `lines` might read or draw on at `at`, and the UVEU operators.

    The service loads (and locks) these buckets, plus every footprint bucket
    of each operator in `footprint_of`, before calling `evaluate`.
    """
    on = utc_date(at)
    buckets: set[BucketKey] = set()
    uveus: set[str] = set()
    for line in lines:
        buckets |= line_buckets(rule_set, line, on)
        if is_uveu(rule_set, line.operator, on):
            uveus.add(line.operator.id)
    return Needs(frozenset(buckets), frozenset(uveus))

