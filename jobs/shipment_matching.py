"""Matching shipments to committed reservations; every mismatch becomes a finding.

Finding kinds (all idempotent by fingerprint):
- `shipment_without_reservation`: the reservation id is unknown, or the
  reservation is not committed (held, released, expired);
- `over_shipment`: more shipped than reserved, by chip quantity (for chips the
  reservation names) or by TPP (chips shipped against raw-TPP lines, or chips
  the reservation does not name at all);
- `destination_mismatch` / `consignee_mismatch`: the shipment goes somewhere,
  or to someone, no line of the reservation names (for that chip);
- `not_shipped`: committed more than N days ago and nothing shipped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.records import record_finding
from ledger.books import COMMITTED
from ledger.store.job_models import Shipment
from ledger.store.models import Reservation, ReservationLine

SHIPMENT = Shipment.__table__  # type: ignore[attr-defined]
RESERVATION = Reservation.__table__  # type: ignore[attr-defined]
RES_LINE = ReservationLine.__table__  # type: ignore[attr-defined]
JOB = "shipments"


def _row(s: Any) -> dict[str, Any]:
    return {"shipment_id": s.id, "import_id": s.import_id, "row": s.row_no,
            "reservation_id": s.reservation_id, "chip": s.chip, "quantity": s.quantity,
            "destination": s.destination, "consignee_id": s.consignee_id,
            "ship_date": s.ship_date.isoformat()}


def match_reservations(session: Session, reservation_ids: Iterable[str], now: datetime,
                       run_id: int | None = None) -> int:
    """Checks every shipment of these reservations (all imports); returns new findings."""
    found = 0
    for rid in sorted(set(reservation_ids)):
        res = session.execute(sa.select(RESERVATION).where(RESERVATION.c.id == rid)).first()
        ships = session.execute(sa.select(SHIPMENT).where(SHIPMENT.c.reservation_id == rid)
                                .order_by(SHIPMENT.c.id)).all()
        if res is None or res.status != COMMITTED or res.reversed_at is not None:
            status = None if res is None else ("reversed" if res.reversed_at else res.status)
            for s in ships:
                found += record_finding(
                    session, kind="shipment_without_reservation", subject=rid, job=JOB,
                    now=now, run_id=run_id, identity=[s.id],
                    details={**_row(s), "reservation_status": status})
            continue
        lines = session.execute(sa.select(RES_LINE).where(RES_LINE.c.reservation_id == rid)).all()
        found += _check_places(session, rid, lines, ships, now, run_id)
        found += _check_quantities(session, rid, lines, ships, now, run_id)
    return found


def _check_places(session: Session, rid: str, lines: Sequence[Any], ships: Sequence[Any],
                  now: datetime, run_id: int | None) -> int:
    found = 0
    for s in ships:
        # Lines of the same chip when the reservation names it; else any line.
        candidates = [ln for ln in lines if ln.chip == s.chip] or lines
        if s.destination not in {ln.destination_country for ln in candidates}:
            found += record_finding(
                session, kind="destination_mismatch", subject=rid, job=JOB, now=now,
                run_id=run_id, identity=[s.id],
                details={**_row(s), "reserved": sorted({ln.destination_country
                                                        for ln in candidates})})
        if s.consignee_id not in {ln.consignee_id for ln in candidates}:
            found += record_finding(
                session, kind="consignee_mismatch", subject=rid, job=JOB, now=now,
                run_id=run_id, identity=[s.id],
                details={**_row(s), "reserved": sorted({ln.consignee_id for ln in candidates})})
    return found


def _check_quantities(session: Session, rid: str, lines: Sequence[Any], ships: Sequence[Any],
                      now: datetime, run_id: int | None) -> int:
    reserved_qty: dict[str, int] = defaultdict(int)
    raw_tpp = 0
    for ln in lines:
        if ln.chip is not None and ln.quantity is not None:
            reserved_qty[ln.chip] += ln.quantity
        else:
            raw_tpp += ln.tpp
    shipped_qty: dict[str, int] = defaultdict(int)
    pool_tpp = 0  # shipped TPP that must fit in the raw-TPP lines
    unknown_tpp = False
    for s in ships:
        if s.chip in reserved_qty:
            shipped_qty[s.chip] += s.quantity
        elif s.tpp is None:
            unknown_tpp = True  # a chip outside the catalog: cannot be weighed in TPP
        else:
            pool_tpp += s.tpp
    found = 0
    for chip, shipped in sorted(shipped_qty.items()):
        if shipped > reserved_qty[chip]:
            found += record_finding(
                session, kind="over_shipment", subject=rid, job=JOB, now=now, run_id=run_id,
                identity=["chip", chip, shipped],
                details={"reservation_id": rid, "basis": "chip_quantity", "chip": chip,
                         "reserved": reserved_qty[chip], "shipped": shipped})
    if pool_tpp > raw_tpp or (unknown_tpp and raw_tpp == 0):
        found += record_finding(
            session, kind="over_shipment", subject=rid, job=JOB, now=now, run_id=run_id,
            identity=["tpp", pool_tpp, unknown_tpp],
            details={"reservation_id": rid, "basis": "tpp", "reserved_tpp": raw_tpp,
                     "shipped_tpp": pool_tpp, "unweighed_chips": unknown_tpp})
    return found


def find_unshipped(session: Session, now: datetime, deadline_days: int,
                   run_id: int | None = None) -> int:
    """Committed (and not reversed) reservations older than the deadline with no shipment."""
    cutoff = now - timedelta(days=deadline_days)
    shipped = sa.select(SHIPMENT.c.id).where(SHIPMENT.c.reservation_id == RESERVATION.c.id)
    rows = session.execute(
        sa.select(RESERVATION.c.id, RESERVATION.c.resolved_at).where(
            RESERVATION.c.status == COMMITTED, RESERVATION.c.reversed_at.is_(None),
            RESERVATION.c.resolved_at <= cutoff, ~sa.exists(shipped))
        .order_by(RESERVATION.c.resolved_at)
    ).all()
    found = 0
    for r in rows:
        found += record_finding(
            session, kind="not_shipped", subject=r.id, job=JOB, now=now, run_id=run_id,
            identity=[], details={"reservation_id": r.id,
                                  "committed_at": r.resolved_at.isoformat(),
                                  "deadline_days": deadline_days})
    return found
