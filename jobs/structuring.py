"""Job: orders split across linked consignees to stay under the low-volume exemption.

Consignees are linked when they share a normalised address, officer or owner
(`ledger.screening.normalise`); links are transitive (A-B share an address,
B-C an officer: A, B and C are one linked set), so the sets are the connected
components of the links (union-find). A set whose members all sit in one
declared group is skipped: the LPP rule already counts a group as one. Any
other set whose LPP use in one calendar year adds up to more than one LPP cap
is a `structuring` finding naming the parties, the links and the figures.

LPP use of a consignee in a year = the TPP its own lines draw on LPP buckets
of that year's period, committed and not reversed or held and not yet past
its time: the definition `ledger.operations.lpp_received` uses for the
group-change guard, read through the line draws (reservation_line by
consignee, line_draw and reservation by primary key), never by scanning
entries. The cap is the rule set's, through `bucket_cap` on an LPP bucket.

Years checked: the current one and the one before (a late commit or a
reversal can still change last year's use); `ctx.options["years"]` picks others.

Once per fact: the finding's identity is (sorted party ids, year). A later run
that sees more use of the same set in the same year records nothing; a set
that grows (another consignee linked) is a new fact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.context import JobContext, JobResult
from jobs.records import record_finding
from ledger.books import COMMITTED, HELD
from ledger.policy.buckets import lpp_bucket
from ledger.policy.caps import bucket_cap
from ledger.policy.model import utc_date
from ledger.reference import consignee_info
from ledger.screening.normalise import normalise_address, normalise_name, normalise_person
from ledger.store.models import Bucket, Consignee, LineDraw, Reservation, ReservationLine

CONSIGNEE = Consignee.__table__  # type: ignore[attr-defined]
BUCKET = Bucket.__table__  # type: ignore[attr-defined]
LINE_DRAW = LineDraw.__table__  # type: ignore[attr-defined]
RES_LINE = ReservationLine.__table__  # type: ignore[attr-defined]
RESERVATION = Reservation.__table__  # type: ignore[attr-defined]

JOB = "structuring"
KIND = "structuring"
CHUNK = 500
# The fields that link consignees, and how each value is normalised.
ADDRESS, OFFICER, OWNER = "address", "officer", "owner"


@dataclass(frozen=True)
class Party:
    id: str
    name: str
    group_id: str | None
    row: Any  # the consignee row (for the policy's ConsigneeInfo)


@dataclass(frozen=True)
class Link:
    field: str  # address | officer | owner
    value: str  # the normalised value they share
    parties: tuple[str, ...]  # sorted ids sharing it

    def doc(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "parties": list(self.parties)}


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        root = self.parent.setdefault(x, x)
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def identity_keys(row: Any) -> set[tuple[str, str]]:
    """(field, normalised value) pairs of one consignee; empty normal forms link nothing."""
    keys: set[tuple[str, str]] = set()
    if row.address:
        keys.add((ADDRESS, normalise_address(row.address)))
    for officer in row.officers or ():
        keys.add((OFFICER, normalise_person(officer)))
    for owner in row.owners or ():
        name = owner.get("name") if isinstance(owner, dict) else None
        if name:
            keys.add((OWNER, normalise_name(name)))
    return {(field, value) for field, value in keys if value}


def linked_sets(rows: Iterable[Any]) -> list[tuple[list[Party], list[Link]]]:
    """Connected components (of two or more consignees) of the shared-identity links,
    each with its members (by id) and the links inside it (by field, value)."""
    parties: dict[str, Party] = {}
    sharing: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        parties[row.id] = Party(row.id, row.name, row.group_id, row)
        for key in identity_keys(row):
            sharing[key].add(row.id)
    uf = UnionFind()
    links: list[Link] = []
    for (field, value), ids in sharing.items():
        if len(ids) < 2:
            continue
        ordered = tuple(sorted(ids))
        links.append(Link(field, value, ordered))
        for other in ordered[1:]:
            uf.union(ordered[0], other)
    members: dict[str, list[str]] = defaultdict(list)
    for pid in uf.parent:
        members[uf.find(pid)].append(pid)
    by_root: dict[str, list[Link]] = defaultdict(list)
    for link in sorted(links, key=lambda k: (k.field, k.value)):
        by_root[uf.find(link.parties[0])].append(link)
    return [([parties[i] for i in sorted(ids)], by_root[root])
            for root, ids in sorted(members.items())]


def one_declared_group(parties: Sequence[Party]) -> bool:
    groups = {p.group_id for p in parties}
    return len(groups) == 1 and None not in groups


def _with_identity(session: Session) -> list[Any]:
    """Only consignees with an address, an officer or an owner."""
    empty = "[]"
    return list(session.execute(
        sa.select(CONSIGNEE.c.id, CONSIGNEE.c.name, CONSIGNEE.c.country,
                  CONSIGNEE.c.operator_id, CONSIGNEE.c.group_id, CONSIGNEE.c.hq_country,
                  CONSIGNEE.c.parent_country, CONSIGNEE.c.address, CONSIGNEE.c.officers,
                  CONSIGNEE.c.owners)
        .where(sa.or_(
            CONSIGNEE.c.address.is_not(None),
            sa.cast(CONSIGNEE.c.officers, sa.Text) != empty,
            sa.cast(CONSIGNEE.c.owners, sa.Text) != empty,
        ))
        .order_by(CONSIGNEE.c.id)
    ))


def lpp_use(session: Session, consignee_ids: Sequence[str], kind: str, period: str,
            now: datetime) -> dict[str, int]:
    """TPP each consignee's own lines draw on LPP buckets of `period`: committed and not
    reversed, or held and not yet past its time (as `lpp_received` counts it)."""
    draw, line, res = LINE_DRAW, RES_LINE, RESERVATION
    out: dict[str, int] = {}
    for start in range(0, len(consignee_ids), CHUNK):
        chunk = list(consignee_ids[start:start + CHUNK])
        query = (
            sa.select(line.c.consignee_id, sa.func.sum(draw.c.tpp))
            .select_from(
                line.join(draw, sa.and_(draw.c.reservation_id == line.c.reservation_id,
                                        draw.c.line_no == line.c.line_no))
                .join(BUCKET, BUCKET.c.id == draw.c.bucket_id)
                .join(res, res.c.id == line.c.reservation_id)
            )
            .where(
                line.c.consignee_id.in_(chunk),
                BUCKET.c.kind == kind,
                BUCKET.c.period == period,
                sa.or_(
                    sa.and_(res.c.status == COMMITTED, res.c.reversed_at.is_(None)),
                    sa.and_(res.c.status == HELD, res.c.expires_at > now),
                ),
            )
            .group_by(line.c.consignee_id)
        )
        for consignee_id, total in session.execute(query):
            out[consignee_id] = int(total or 0)
    return out


def _years(ctx: JobContext, now: datetime) -> list[int]:
    years = ctx.options.get("years")
    if years:
        return sorted({int(y) for y in years})
    return [now.year - 1, now.year]


def _instant_in(year: int, now: datetime) -> datetime:
    """The instant whose rules judge `year`: now in the current year, its last second in
    a past one, its first in a future one."""
    if year == now.year:
        return now
    if year < now.year:
        return datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC)
    return datetime(year, 1, 1, tzinfo=UTC)


def structuring(ctx: JobContext) -> JobResult:
    now = ctx.now()
    rule_set = ctx.ledger.rule_set
    with Session(ctx.engine) as session:
        rows = _with_identity(session)
    sets = linked_sets(rows)
    checked = [(parties, links) for parties, links in sets if not one_declared_group(parties)]
    found: list[dict[str, Any]] = []
    years = _years(ctx, now)
    no_cap: list[int] = []
    with Session(ctx.engine) as session:
        for year in years:
            at = _instant_in(year, now)
            for parties, links in checked:
                # The bucket the policy gives the set's first member in that year: its
                # period label and its cap (LPP caps do not depend on whose bucket it is).
                bucket = lpp_bucket(rule_set, consignee_info(parties[0].row), utc_date(at))
                cap = bucket_cap(rule_set, bucket, at, {})
                if cap is None:
                    no_cap.append(year)
                    break
                ids = [p.id for p in parties]
                use = lpp_use(session, ids, bucket.kind, bucket.period, now)
                total = sum(use.values())
                if total <= cap:
                    continue
                found.append({
                    "year": year,
                    "period": bucket.period,
                    "parties": [{"id": p.id, "name": p.name, "group_id": p.group_id,
                                 "lpp_use": use.get(p.id, 0)} for p in parties],
                    "links": [link.doc() for link in links],
                    "total": total,
                    "cap": cap,
                    "over_by": total - cap,
                    "rule_set": rule_set.name,
                    "as_of": now.isoformat(),
                })
    new_findings = 0
    if found:
        with Session(ctx.write_engine) as session, session.begin():
            for details in found:
                ids = [p["id"] for p in details["parties"]]
                new_findings += record_finding(
                    session, kind=KIND, subject=f"{details['year']}:{'+'.join(ids)}",
                    job=JOB, details=details, now=now, run_id=ctx.run_id,
                    identity={"parties": ids, "year": details["year"]})
    figures: dict[str, Any] = {
        "consignees_with_identity": len(rows), "linked_sets": len(sets),
        "sets_checked": len(checked), "years": years, "over_cap": len(found),
        "new_findings": new_findings,
    }
    if no_cap:
        figures["no_lpp_cap"] = sorted(set(no_cap))
    return JobResult.ok(**figures)
