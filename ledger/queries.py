"""Read-only questions about the books: headroom, history pages, balances as of a time.

Nothing here writes: the Ledger service owns every write transaction. Costs:
- headroom reads the few reference rows of the query, the listed buckets by
  identity (unique index on (kind, key, period)), the operator's footprint
  buckets (index (kind, operator_id)) and their active holds (index
  (bucket_id, expires_at)): independent of the number of entries;
- an entries page is one keyset query on `seq` with the filter's index;
- balances `as_of` scans the entries of the filtered scope up to `as_of`
  (indexes (country, seq), (operator_id, seq), (consignee_id, seq)), then
  the entries of the countries (or LPP groups) those buckets live in, so
  shared buckets show their full use: cost grows with that scope's history,
  never with the whole ledger's (unless no filter is given, which is an
  auditor's whole-ledger question by definition).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.books import ENTRY_KINDS, Totals, fold
from ledger.chain import format_time
from ledger.countries import is_known_country
from ledger.cursors import decode_seq as decode_cursor
from ledger.cursors import encode_seq as encode_cursor
from ledger.errors import InvalidInput
from ledger.policy import engine as policy
from ledger.policy.buckets import footprint_from_balances
from ledger.policy.caps import bucket_cap
from ledger.policy.ruleset import RuleSet
from ledger.policy.types import (
    FOOTPRINT,
    LICENSE,
    LPP,
    Balance,
    BucketKey,
    ConsigneeInfo,
    LicenseInfo,
    OperatorInfo,
)
from ledger.reference import check_id, consignee_info, operator_info
from ledger.store.models import (
    Consignee,
    License,
    LineDraw,
    Operator,
    Reservation,
    ReservationLine,
    UTCDateTime,
)
from ledger.store.txn import ACTIVE_HOLD, BUCKET, ENTRY, bucket_key_of, needed_buckets

MAX_PAGE = 1000
RESERVATION = Reservation.__table__  # type: ignore[attr-defined]
LICENSE_T = License.__table__  # type: ignore[attr-defined]
CONSIGNEE_T = Consignee.__table__  # type: ignore[attr-defined]
LINE_DRAW_T = LineDraw.__table__  # type: ignore[attr-defined]
RES_LINE_T = ReservationLine.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class BucketState:
    """A bucket's balance at one instant, and when the next of its holds expires.

    Until `next_expiry` (and until the next commit touching the bucket) the
    balance cannot change, which is what makes it safe to cache.
    """

    committed: int = 0
    held: int = 0
    next_expiry: datetime | None = None


@dataclass(frozen=True)
class HeadroomPlan:
    """What a headroom query shows, before balances: resolved from reference data."""

    country: str
    tier: int
    operator: OperatorInfo | None
    consignee: ConsigneeInfo | None
    licenses: tuple[LicenseInfo, ...]
    buckets: frozenset[BucketKey]
    footprint_of: frozenset[str]


@dataclass(frozen=True)
class EntryFilter:
    country: str | None = None
    operator_id: str | None = None
    consignee_id: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # Set for an operator's own reads: only its lines to consignees registered under it
    # now, so another operator's consignee never shows, whatever the history holds.
    operator_scope: str | None = None


@dataclass(frozen=True)
class EntryPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def entry_view(row: Any) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "kind": row.kind,
        "reservation_id": row.reservation_id,
        "line_no": row.line_no,
        "tpp": row.tpp,
        "at": format_time(row.effective_at),
        "recorded_at": format_time(row.recorded_at),
        "country": row.country,
        "operator_id": row.operator_id,
        "consignee_id": row.consignee_id,
        "path": row.path,
        "draws": [{"kind": d[0], "key": d[1], "period": d[2], "tpp": d[3]} for d in row.draws],
        "actor": row.actor,
        "rule_set": row.rule_set,
        "rule_set_version": row.rule_set_version,
        "note": row.note,
        "hash": row.hash,
        "prev_hash": row.prev_hash,
    }


def _country(code: str, name: str) -> str:
    if not is_known_country(code):
        raise InvalidInput(f"{name}: {code!r} is not an ISO 3166-1 alpha-2 code", field=name)
    return code


class LedgerReader:
    """Read-only queries over one engine; each method opens its own short session."""

    def __init__(self, engine: sa.Engine, rule_set: RuleSet) -> None:
        # Each answer reads several statements (buckets, then the holds past their
        # time): on PostgreSQL they must see one snapshot, or a commit between them
        # could mix two states. (SQLite read transactions are snapshots already.)
        if engine.dialect.name == "postgresql":
            engine = engine.execution_options(isolation_level="REPEATABLE READ")
        self.engine = engine
        self.rule_set = rule_set

    # -- headroom --------------------------------------------------------------

    def licenses_for(
        self, session: Session, country: str, consignee_id: str | None
    ) -> list[LicenseInfo]:
        """Licences for `country`; with a consignee, only those open to it (or to anyone)."""
        query = sa.select(LICENSE_T).where(LICENSE_T.c.country == country)
        if consignee_id is not None:
            query = query.where(
                sa.or_(LICENSE_T.c.consignee_id.is_(None), LICENSE_T.c.consignee_id == consignee_id)
            )
        rows = session.execute(query.order_by(LICENSE_T.c.id)).all()
        return [LicenseInfo(r.id, r.country, r.consignee_id, r.tpp, r.valid_from, r.valid_to)
                for r in rows]

    def headroom_plan(
        self, country: str, operator_id: str | None, consignee_id: str | None, at: datetime
    ) -> HeadroomPlan:
        """Resolves the query's reference data and the buckets it shows (422 on unknown ids)."""
        _country(country, "country")
        with Session(self.engine) as session:
            operator = consignee = None
            if operator_id is not None:
                check_id(operator_id, "operator_id")
                op_row = session.get(Operator, operator_id)
                if op_row is None:
                    raise InvalidInput(f"unknown operator {operator_id!r}", field="operator_id")
                operator = operator_info(op_row)
            if consignee_id is not None:
                check_id(consignee_id, "consignee_id")
                c_row = session.get(Consignee, consignee_id)
                if c_row is None:
                    raise InvalidInput(f"unknown consignee {consignee_id!r}", field="consignee_id")
                if c_row.country != country:
                    raise InvalidInput(
                        f"consignee {consignee_id!r} is located in {c_row.country}, "
                        f"not in {country}",
                        field="consignee_id",
                    )
                consignee = consignee_info(c_row)
            licenses = tuple(self.licenses_for(session, country, consignee_id))
        needs = policy.headroom_needs(self.rule_set, country, operator, consignee, licenses, at)
        return HeadroomPlan(
            country=country,
            tier=self.rule_set.tier(country, at),
            operator=operator,
            consignee=consignee,
            licenses=licenses,
            buckets=needs.buckets,
            footprint_of=needs.footprint_of,
        )

    def bucket_states(
        self, keys: Iterable[BucketKey], footprint_of: Iterable[str], at: datetime
    ) -> dict[BucketKey, BucketState]:
        """Balances at `at` of these buckets (missing ones are absent = unused) and of every
        footprint bucket of `footprint_of`; holds past their time count for nothing."""
        query = needed_buckets(self.engine.dialect.name, keys, footprint_of)
        if query is None:
            return {}
        with Session(self.engine) as session:
            rows = session.execute(query).all()
            if not rows:
                return {}
            expires = sa.type_coerce(ACTIVE_HOLD.c.expires_at, UTCDateTime())
            holds = session.execute(
                sa.select(
                    ACTIVE_HOLD.c.bucket_id,
                    sa.func.sum(
                        sa.case((ACTIVE_HOLD.c.expires_at <= at, ACTIVE_HOLD.c.tpp), else_=0)
                    ),
                    sa.type_coerce(
                        sa.func.min(
                            sa.case((ACTIVE_HOLD.c.expires_at > at, expires), else_=None)
                        ),
                        UTCDateTime(),
                    ),
                )
                .where(ACTIVE_HOLD.c.bucket_id.in_([r.id for r in rows]))
                .group_by(ACTIVE_HOLD.c.bucket_id)
            ).all()
        lapsed = {h[0]: (int(h[1] or 0), h[2]) for h in holds}
        out = {}
        for r in rows:
            gone, next_expiry = lapsed.get(r.id, (0, None))
            out[bucket_key_of(r)] = BucketState(r.committed, r.held - gone, next_expiry)
        return out

    def headroom_from(
        self, plan: HeadroomPlan, states: dict[BucketKey, BucketState], at: datetime
    ) -> dict[str, Any]:
        """The headroom answer for `plan` given bucket states (from the DB or a cache)."""
        balances = {k: Balance(s.committed, s.held) for k, s in states.items()}
        footprint = (
            footprint_from_balances(balances, plan.operator.id)
            if plan.operator is not None and plan.operator.id in plan.footprint_of
            else None
        )
        listed = policy.headroom_buckets(
            self.rule_set, plan.country, plan.operator, plan.consignee, plan.licenses, at,
            footprint=footprint,
        )
        buckets = []
        for entry in listed:
            balance = balances.get(entry.bucket, Balance())
            cap = entry.cap if entry.cap is not None else 0
            buckets.append(_bucket_dict(entry.kind, entry.key, cap, balance))
        return {"country": plan.country, "tier": plan.tier, "buckets": buckets}

    def headroom(
        self, country: str, operator_id: str | None, consignee_id: str | None, at: datetime
    ) -> dict[str, Any]:
        """Every bucket that applies to the query at `at`, straight from the database."""
        plan = self.headroom_plan(country, operator_id, consignee_id, at)
        states = self.bucket_states(plan.buckets, plan.footprint_of, at)
        return self.headroom_from(plan, states, at)

    # -- history ------------------------------------------------------------------

    def entries(self, filt: EntryFilter, cursor: str | None, limit: int) -> EntryPage:
        """One page of entries in seq order; `next_cursor` resumes after its last item.

        Keyset pagination on `seq` (never OFFSET): a walk sees every matching
        entry exactly once, even while new entries are appended.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")
        after = decode_cursor(cursor) if cursor else 0
        query = _filtered(sa.select(ENTRY), filt).where(ENTRY.c.seq > after)
        with Session(self.engine) as session:
            rows = session.execute(query.order_by(ENTRY.c.seq).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return EntryPage(
            items=[entry_view(r) for r in rows],
            next_cursor=encode_cursor(rows[-1].seq) if more else None,
        )

    # -- balances as of a time --------------------------------------------------

    def balances_as_of(
        self,
        as_of: datetime,
        country: str | None = None,
        operator_id: str | None = None,
        consignee_id: str | None = None,
        operator_scope: str | None = None,
    ) -> list[dict[str, Any]]:
        """Capped buckets touched by the scope's entries, as they stood at `as_of`.

        Counts every entry with effective_at <= as_of that draws on those
        buckets (other parties' too: a bucket's balance is the bucket's), and a
        hold as nothing once its reservation's expires_at <= as_of, whether or
        not an `expire` entry was written yet. Footprint buckets (uncapped) are
        not listed. Sorted by (kind, key, period).
        """
        scope = EntryFilter(country=country, operator_id=operator_id,
                            consignee_id=consignee_id, until=as_of,
                            operator_scope=operator_scope)
        with Session(self.engine) as session:
            wanted = self._buckets_in_scope(session, scope)
            if not wanted:
                return []
            # Full keys (with their country scope) of the stored rows: where their
            # entries are and what their caps are can depend on it.
            keys = {bucket: BucketKey(*bucket) for bucket in wanted}
            for row in session.execute(sa.select(BUCKET).where(
                sa.tuple_(BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period).in_(sorted(wanted))
            )):
                keys[(row.kind, row.key, row.period)] = bucket_key_of(row)
            tallies = self._tally(session, keys, as_of)
            expiry = self._expiries(session, tallies, as_of)
            caps = self._caps(session, keys, as_of)
        out = []
        for bucket in sorted(wanted):
            tally = tallies.get(bucket, Totals())
            held = sum(t for rid, t in tally.held_by_reservation.items()
                       if t > 0 and rid not in expiry)
            balance = Balance(tally.committed, held)
            out.append(_bucket_dict(bucket[0], bucket[1], caps[bucket], balance)
                       | {"period": bucket[2]})
        return out

    def _buckets_in_scope(self, session: Session, scope: EntryFilter) -> set[tuple[str, str, str]]:
        wanted: set[tuple[str, str, str]] = set()
        query = _filtered(sa.select(ENTRY.c.draws), scope).execution_options(yield_per=5000)
        for (draws,) in session.execute(query):
            for kind, key, period, _tpp in draws:
                if kind != FOOTPRINT:
                    wanted.add((kind, key, period))
        return wanted

    def _tally(
        self, session: Session, keys: dict[tuple[str, str, str], BucketKey], as_of: datetime
    ) -> dict[tuple[str, str, str], Totals]:
        """Sums the draws on these buckets of every entry that can draw on them, up to `as_of`.

        Only entries of the countries those buckets live in (or, for LPP
        buckets, of the consignees sharing them) can draw on them, so only
        those are read, through the (country, seq) and (consignee_id, seq)
        indexes.
        """
        countries = {k.country for k in keys.values() if k.country is not None}
        lpp_keys = [k.key for k in keys.values() if k.kind == LPP]
        consignees = set(_lpp_members(session, lpp_keys))
        conds = []
        if countries:
            conds.append(ENTRY.c.country.in_(sorted(countries)))
        if consignees:
            conds.append(ENTRY.c.consignee_id.in_(sorted(consignees)))
        if not conds:
            return {}
        query = (
            sa.select(ENTRY.c.kind, ENTRY.c.reservation_id, ENTRY.c.draws)
            .where(sa.or_(*conds), ENTRY.c.effective_at <= as_of)
            .execution_options(yield_per=5000)
        )
        return fold(session.execute(query), wanted=keys, per_reservation=True)

    @staticmethod
    def _expiries(
        session: Session, tallies: dict[tuple[str, str, str], Totals], as_of: datetime
    ) -> set[str]:
        """Reservations whose hold still stands in the entries but had lapsed by `as_of`."""
        open_ids = sorted({rid for t in tallies.values()
                           for rid, held in t.held_by_reservation.items() if held > 0})
        lapsed: set[str] = set()
        for start in range(0, len(open_ids), 500):
            chunk = open_ids[start:start + 500]
            lapsed.update(session.execute(
                sa.select(RESERVATION.c.id)
                .where(RESERVATION.c.id.in_(chunk), RESERVATION.c.expires_at <= as_of)
            ).scalars())
        return lapsed

    def _caps(
        self, session: Session, keys: dict[tuple[str, str, str], BucketKey], as_of: datetime
    ) -> dict[tuple[str, str, str], int]:
        """Each bucket's cap at `as_of` as the policy gives it (0 where it gives none)."""
        licence_ids = [k.key for k in keys.values() if k.kind == LICENSE]
        licence_tpp: dict[str, int] = {}
        if licence_ids:
            licence_tpp = {r.id: r.tpp for r in session.execute(
                sa.select(LICENSE_T.c.id, LICENSE_T.c.tpp).where(LICENSE_T.c.id.in_(licence_ids))
            )}
        caps = {}
        for bucket, key in keys.items():
            cap = bucket_cap(self.rule_set, key, as_of, licence_tpp)
            caps[bucket] = cap if cap is not None else 0
        return caps


def _lpp_members(session: Session, lpp_keys: Sequence[str]) -> list[str]:
    """Consignee ids that drew on these LPP buckets ("consignee:<id>" / "group:<id>").

    For a group, the members are read from the draws themselves (line_draw, by
    bucket id), not from today's membership: a consignee that has left the group
    still counts in the group's past use.
    """
    direct = [k.split(":", 1)[1] for k in lpp_keys if k.startswith("consignee:")]
    groups = [k for k in lpp_keys if k.startswith("group:")]
    members = list(direct)
    if groups:
        bucket_ids = sa.select(BUCKET.c.id).where(BUCKET.c.kind == LPP, BUCKET.c.key.in_(groups))
        members += session.execute(
            sa.select(RES_LINE_T.c.consignee_id).distinct()
            .select_from(LINE_DRAW_T.join(RES_LINE_T, sa.and_(
                RES_LINE_T.c.reservation_id == LINE_DRAW_T.c.reservation_id,
                RES_LINE_T.c.line_no == LINE_DRAW_T.c.line_no)))
            .where(LINE_DRAW_T.c.bucket_id.in_(bucket_ids))
        ).scalars().all()
    return members


def _filtered(query: Any, filt: EntryFilter) -> Any:
    if filt.country is not None:
        query = query.where(ENTRY.c.country == _country(filt.country, "country"))
    if filt.operator_id is not None:
        query = query.where(ENTRY.c.operator_id == filt.operator_id)
    if filt.consignee_id is not None:
        query = query.where(ENTRY.c.consignee_id == filt.consignee_id)
    if filt.operator_scope is not None:
        own = sa.select(CONSIGNEE_T.c.id).where(CONSIGNEE_T.c.operator_id == filt.operator_scope)
        query = query.where(ENTRY.c.operator_id == filt.operator_scope,
                            ENTRY.c.consignee_id.in_(own))
    if filt.kind is not None:
        if filt.kind not in ENTRY_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(ENTRY_KINDS)}", field="kind")
        query = query.where(ENTRY.c.kind == filt.kind)
    if filt.since is not None:
        query = query.where(ENTRY.c.effective_at >= filt.since)
    if filt.until is not None:
        query = query.where(ENTRY.c.effective_at <= filt.until)
    return query


def _bucket_dict(kind: str, key: str, cap: int, balance: Balance) -> dict[str, Any]:
    return {
        "kind": kind,
        "key": key,
        "cap": cap,
        "committed": balance.committed,
        "held": balance.held,
        # Never below zero: a cap lowered under existing use leaves nothing, not a debt.
        "available": max(0, cap - balance.committed - balance.held),
    }
