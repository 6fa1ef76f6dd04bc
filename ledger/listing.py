"""Lists: reservations and reference data page by page, and what an operator may read.

Read-only, like `ledger.queries`. Every page is one keyset query (never
OFFSET) that stops at `limit + 1` rows on an index in the page's order:
- reservations by (created_at, id), oldest first: index
  `ix_reservation_created_id`, or `ix_reservation_owner_created_id` for one
  vendor's. `since` / `until` bound the same index range; a `status` filter
  is checked on the rows the index walk meets (a status is not indexed: it
  changes on every commit and release, and a rare status over a long history
  costs a longer walk, never a sort of the table);
- operators, consignees, licences by id (their primary keys); an operator's
  own consignees by `ix_consignee_operator_id`, its licences through those
  consignees and `ix_license_consignee_id`.

Scope, which the caller states and these functions enforce: a vendor lists
the reservations it made; an operator reads only its own operator, the
consignees registered under it and the licences naming those consignees (a
consignee with no operator, or a licence with no consignee, belongs to no
operator). Cursors carry a position only, never a scope: a cursor edited to
point elsewhere resumes there, inside the same scope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger import cursors
from ledger.books import EXPIRED, HELD, STATUSES
from ledger.errors import InvalidInput, NotFound
from ledger.operations import ReservationState
from ledger.reference import ID_PATTERN
from ledger.store.models import Consignee, License, Operator, Reservation, ReservationLine

MAX_PAGE = 1000
DEFAULT_PAGE = 100
REFERENCE_KINDS = ("operators", "consignees", "licenses")

RESERVATION = Reservation.__table__  # type: ignore[attr-defined]
RES_LINE = ReservationLine.__table__  # type: ignore[attr-defined]
OPERATOR_T = Operator.__table__  # type: ignore[attr-defined]
CONSIGNEE_T = Consignee.__table__  # type: ignore[attr-defined]
LICENSE_T = License.__table__  # type: ignore[attr-defined]
TABLES = {"operators": OPERATOR_T, "consignees": CONSIGNEE_T, "licenses": LICENSE_T}


@dataclass(frozen=True)
class ReservationFilter:
    owner: str | None = None  # a vendor's key id: only the reservations it made
    status: str | None = None  # as GET /v1/reservations/{id} reads it (lazy expiry included)
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at <= until


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


# -- cursors ---------------------------------------------------------------------


def _after(doc: dict[str, Any]) -> str:
    after: str = cursors.field(doc, "after", str)
    if not ID_PATTERN.match(after):
        raise InvalidInput("cursor is not one this service issued for this list",
                           field="cursor")
    return after


def encode_reservation_cursor(created_at: datetime, reservation_id: str) -> str:
    return cursors.encode("reservations", at=cursors.encode_time(created_at),
                          after=reservation_id)


def decode_reservation_cursor(cursor: str) -> tuple[datetime, str]:
    doc = cursors.decode(cursor, "reservations")
    return cursors.time_field(doc, "at"), _after(doc)


def encode_reference_cursor(kind: str, ident: str) -> str:
    return cursors.encode(kind, after=ident)


def decode_reference_cursor(cursor: str, kind: str) -> str:
    return _after(cursors.decode(cursor, kind))


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", field="limit")


# -- the reader ---------------------------------------------------------------------


class Listing:
    """Read-only lists over one engine; each method opens its own short session."""

    def __init__(self, engine: sa.Engine, now: Callable[[], datetime]) -> None:
        self.engine = engine
        self.now = now

    def reservations(self, filt: ReservationFilter, cursor: str | None, limit: int) -> Page:
        """One page of reservations, oldest first by (created_at, id), each as
        GET /v1/reservations/{id} shows it; `next_cursor` resumes after the last item.

        A walk sees every reservation that matched when it began exactly once and
        none twice, even while new ones are made: created_at is read after the write
        lock and never goes back, so a new one sorts after every existing one. (One
        made in the very microsecond of the walk's last item and sorting before it
        by id would be missed; every later one is seen.)"""
        _check_limit(limit)
        now = self.now()
        res = RESERVATION
        query = sa.select(res)
        if filt.owner is not None:
            query = query.where(res.c.owner == filt.owner)
        if filt.since is not None:
            query = query.where(res.c.created_at >= filt.since)
        if filt.until is not None:
            query = query.where(res.c.created_at <= filt.until)
        if filt.status is not None:
            query = query.where(_status_is(filt.status, now))
        if cursor:
            at, after = decode_reservation_cursor(cursor)
            query = query.where(sa.tuple_(res.c.created_at, res.c.id) > sa.tuple_(
                sa.literal(at, res.c.created_at.type), sa.literal(after, res.c.id.type)))
        query = query.order_by(res.c.created_at, res.c.id).limit(limit + 1)
        with Session(self.engine) as session:
            rows = session.execute(query).all()
            more = len(rows) > limit
            rows = rows[:limit]
            states = {r.id: ReservationState(dict(r._mapping), []) for r in rows}
            if states:
                for line in session.execute(
                    sa.select(RES_LINE).where(RES_LINE.c.reservation_id.in_(list(states)))
                    .order_by(RES_LINE.c.reservation_id, RES_LINE.c.line_no)
                ).all():
                    states[line.reservation_id].lines.append(dict(line._mapping))
        return Page(
            items=[states[r.id].view(now).to_dict() for r in rows],
            next_cursor=encode_reservation_cursor(rows[-1].created_at, rows[-1].id)
            if more else None,
        )

    def references(self, kind: str, operator_scope: str | None, cursor: str | None,
                   limit: int) -> Page:
        """One page of `kind` ("operators", "consignees", "licenses") by id, as rows;
        with `operator_scope`, only that operator's own records (see the module)."""
        _check_limit(limit)
        table = TABLES[kind]
        query = sa.select(table)
        if operator_scope is not None:
            query = query.where(_owned_by(kind, operator_scope))
        if cursor:
            query = query.where(table.c.id > decode_reference_cursor(cursor, kind))
        query = query.order_by(table.c.id).limit(limit + 1)
        with Session(self.engine) as session:
            rows = session.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=[dict(r._mapping) for r in rows],
            next_cursor=encode_reference_cursor(kind, rows[-1].id) if more else None,
        )

    def reference(self, kind: str, ident: str, operator_scope: str | None) -> dict[str, Any] | None:
        """One reference row as a plain dict; NotFound if there is none.

        With `operator_scope`, None when the row is not that operator's own, and
        also when there is no such row (so an operator key cannot probe which of
        its competitors' ids exist); its own operator id not registered is NotFound."""
        table = TABLES[kind]
        if operator_scope is not None and kind == "operators" and ident != operator_scope:
            return None
        query = sa.select(table).where(table.c.id == ident)
        if operator_scope is not None and kind != "operators":
            query = query.where(_owned_by(kind, operator_scope))
        with Session(self.engine) as session:
            row = session.execute(query).first()
        if row is not None:
            return dict(row._mapping)
        if operator_scope is not None and kind != "operators":
            return None
        raise NotFound(f"no {kind[:-1]} {ident!r}")


def _status_is(status: str, now: datetime) -> Any:
    """The stored-row condition for a status as read at `now` (a hold past its time
    reads `expired` before the expiry job writes it)."""
    res = RESERVATION
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
    if status == HELD:
        return sa.and_(res.c.status == HELD, res.c.expires_at > now)
    if status == EXPIRED:
        return sa.or_(res.c.status == EXPIRED,
                      sa.and_(res.c.status == HELD, res.c.expires_at <= now))
    return res.c.status == status


def _owned_by(kind: str, operator_id: str) -> Any:
    """The condition for a row of `kind` to be `operator_id`'s own."""
    if kind == "operators":
        return OPERATOR_T.c.id == operator_id
    if kind == "consignees":
        return CONSIGNEE_T.c.operator_id == operator_id
    own = sa.select(CONSIGNEE_T.c.id).where(CONSIGNEE_T.c.operator_id == operator_id)
    return LICENSE_T.c.consignee_id.in_(own)
