"""Replay: re-decide the recorded history under another rule set. Read-only.

The recorded entries are walked in seq order and a simulated book is kept in
memory: each reservation is re-decided by the pure policy at the instant it
was originally held, against the simulated balances (holds past their time
count for nothing there too); later commits, releases, expiries and
reversals of the same reservation are applied if the replay had held it.

What it can and cannot say: history holds only what was accepted (a denied
request writes no entry), so replay shows what the other rule set would have
denied or routed differently, not what it would have allowed that was
denied. Lines are resolved against today's reference data (operators,
consignees, licences as stored now).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.books import COMMIT, EXPIRE, HOLD, RELEASE, REVERSAL
from ledger.errors import InvalidInput
from ledger.policy import engine as policy
from ledger.policy.ruleset import RuleSet
from ledger.policy.types import FOOTPRINT, Balance, BucketKey, Decision, LineRequest
from ledger.reference import LineResolver
from ledger.store.models import Entry, Reservation, ReservationLine
from ledger.views import LineInput

ENTRY = Entry.__table__  # type: ignore[attr-defined]
RES = Reservation.__table__  # type: ignore[attr-defined]
RES_LINE = ReservationLine.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LineDifference:
    reservation_id: str
    line: int
    country: str
    tpp: int
    recorded_path: str
    replayed_path: str | None  # None: the replayed rule set denies it
    constraints: tuple[str, ...] = ()


@dataclass
class ReplayReport:
    rule_set: str
    rule_set_version: str
    reservations: int = 0
    lines: int = 0
    same_path: int = 0
    other_path: int = 0
    denied_reservations: int = 0
    unresolvable: int = 0
    recorded_by_country: dict[str, int] = field(default_factory=dict)
    replayed_by_country: dict[str, int] = field(default_factory=dict)
    differences: list[LineDifference] = field(default_factory=list)
    max_differences: int = 20

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_set": self.rule_set,
            "rule_set_version": self.rule_set_version,
            "reservations": self.reservations,
            "lines": self.lines,
            "same_path": self.same_path,
            "other_path": self.other_path,
            "denied_reservations": self.denied_reservations,
            "unresolvable": self.unresolvable,
            "tpp_by_country": {
                c: {
                    "recorded": self.recorded_by_country.get(c, 0),
                    "replayed": self.replayed_by_country.get(c, 0),
                }
                for c in sorted(set(self.recorded_by_country) | set(self.replayed_by_country))
            },
            "first_differences": [d.__dict__ for d in self.differences],
        }


class SimulatedBook:
    """Balances in memory, with holds that stop counting at their expiry instant."""

    def __init__(self) -> None:
        self.committed: dict[BucketKey, int] = defaultdict(int)
        self.held: dict[BucketKey, int] = defaultdict(int)
        self.holds: dict[str, list[tuple[BucketKey, int]]] = {}
        self.committed_draws: dict[str, list[tuple[BucketKey, int]]] = {}
        self._expiries: list[tuple[datetime, str]] = []
        self._footprints: dict[str, set[BucketKey]] = defaultdict(set)

    def advance_to(self, now: datetime) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, rid = heapq.heappop(self._expiries)
            self.drop_hold(rid)

    def balances(self, keys: frozenset[BucketKey], footprint_of: frozenset[str]) -> dict[
        BucketKey, Balance
    ]:
        wanted = set(keys)
        for operator_id in footprint_of:
            wanted |= self._footprints[operator_id]
        return {k: Balance(self.committed[k], self.held[k]) for k in wanted}

    def hold(self, rid: str, draws: list[tuple[BucketKey, int]], expires_at: datetime) -> None:
        self.holds[rid] = draws
        for key, tpp in draws:
            self.held[key] += tpp
            if key.kind == FOOTPRINT and key.operator_id:
                self._footprints[key.operator_id].add(key)
        heapq.heappush(self._expiries, (expires_at, rid))

    def drop_hold(self, rid: str) -> list[tuple[BucketKey, int]]:
        draws = self.holds.pop(rid, [])
        for key, tpp in draws:
            self.held[key] -= tpp
        return draws

    def commit(self, rid: str) -> None:
        draws = self.drop_hold(rid)
        for key, tpp in draws:
            self.committed[key] += tpp
        self.committed_draws[rid] = draws

    def reverse(self, rid: str) -> None:
        for key, tpp in self.committed_draws.pop(rid, []):
            self.committed[key] -= tpp


def _entries(session: Session, batch: int = 5000) -> Iterator[Any]:
    last = 0
    while True:
        rows = session.execute(
            sa.select(ENTRY.c.seq, ENTRY.c.kind, ENTRY.c.reservation_id, ENTRY.c.line_no,
                      ENTRY.c.effective_at)
            .where(ENTRY.c.seq > last)
            .order_by(ENTRY.c.seq)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def replay(engine: sa.Engine, rule_set: RuleSet, max_differences: int = 20,
           progress: Callable[[int], None] | None = None) -> ReplayReport:
    """Re-decides every recorded reservation under `rule_set`; writes nothing.
    `progress(seq)`: called every thousand entries with the last seq walked."""
    report = ReplayReport(rule_set.name, rule_set.version, max_differences=max_differences)
    book = SimulatedBook()
    with Session(engine) as session:
        resolver = LineResolver(session, rule_set.chip_tpp)
        seen: set[str] = set()
        for entry in _entries(session):
            if progress is not None and entry.seq % 1000 == 0:
                progress(entry.seq)
            rid = entry.reservation_id
            book.advance_to(entry.effective_at)
            if entry.kind == HOLD:
                if rid not in seen:
                    seen.add(rid)
                    _replay_reservation(session, resolver, rule_set, book, report, rid,
                                        entry.effective_at)
            elif rid in seen and entry.line_no == 0:  # one lifecycle step per reservation
                if entry.kind == COMMIT and rid in book.holds:
                    book.commit(rid)
                elif entry.kind in (RELEASE, EXPIRE):
                    book.drop_hold(rid)
                elif entry.kind == REVERSAL:
                    book.reverse(rid)
    return report


def _replay_reservation(
    session: Session,
    resolver: LineResolver,
    rule_set: RuleSet,
    book: SimulatedBook,
    report: ReplayReport,
    rid: str,
    at: datetime,
) -> None:
    res = session.execute(sa.select(RES).where(RES.c.id == rid)).one()
    rows = session.execute(
        sa.select(RES_LINE).where(RES_LINE.c.reservation_id == rid).order_by(RES_LINE.c.line_no)
    ).all()
    report.reservations += 1
    report.lines += len(rows)
    for r in rows:
        report.recorded_by_country[r.destination_country] = (
            report.recorded_by_country.get(r.destination_country, 0) + r.tpp
        )
    try:
        lines: list[LineRequest] = resolver.resolve(
            [LineInput(r.destination_country, r.operator_id, r.consignee_id, tpp=r.tpp,
                       license_id=r.license_id) for r in rows]
        )
    except InvalidInput:
        report.unresolvable += 1
        return
    # Resolved from the recorded TPP, so the line keeps its recorded amount even if the
    # catalog changed; the chip still goes along, for rules on chip attributes (USC-7).
    lines = [replace(request, chip=r.chip) for request, r in zip(lines, rows, strict=True)]
    needs = policy.needs(rule_set, lines, at)
    decision: Decision = policy.evaluate(
        rule_set, lines, at, book.balances(needs.buckets, needs.footprint_of)
    )
    for r, d in zip(rows, decision.lines, strict=True):
        if d.path == r.path:
            report.same_path += 1
            continue
        report.other_path += 1
        if len(report.differences) < report.max_differences:
            report.differences.append(
                LineDifference(rid, r.line_no, r.destination_country, r.tpp, r.path, d.path,
                               tuple(sorted({v.constraint for v in d.violations})))
            )
    if not decision.allowed:
        report.denied_reservations += 1
        return
    for r in rows:
        report.replayed_by_country[r.destination_country] = (
            report.replayed_by_country.get(r.destination_country, 0) + r.tpp
        )
    draws = [(draw.bucket, draw.tpp) for line in decision.lines for draw in line.draws]
    book.hold(rid, draws, res.expires_at)
