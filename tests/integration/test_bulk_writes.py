"""ledger.store.bulk: many rows per statement, with the columns' own checks intact."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.store.bulk import Update, write_all
from ledger.store.engine import create_ledger_engine
from ledger.store.txn import BUCKET, RESERVATION

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _reservation(rid: str, **over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": rid, "owner": "vendor:v", "status": "held", "created_at": NOW,
        "expires_at": NOW, "resolved_at": None, "reversed_at": None, "hold_seconds": 60,
        "rule_set": "rs", "rule_set_version": "1", "idempotency_key": None}
    row.update(over)
    return row


def test_rows_and_updates_land_as_given(engine: sa.Engine) -> None:
    with Session(engine) as session, session.begin():
        session.execute(sa.insert(BUCKET), [
            {"kind": "k", "key": f"b{i}", "period": "2026", "operator_id": None,
             "country": None, "committed": 10, "held": 5} for i in range(3)])
        ids = list(session.execute(sa.select(BUCKET.c.id).order_by(BUCKET.c.key)).scalars())
        write_all(session, [], [(RESERVATION, [_reservation("res_a"), _reservation("res_b")])],
                  [Update(BUCKET, "id", ("committed", "held"),
                          [(1, -2, ids[0]), (0, 7, ids[2])],
                          adds=frozenset(("committed", "held"))),
                   Update(RESERVATION, "id", ("status", "resolved_at"),
                          [("committed", NOW, "res_b")])])
    with Session(engine) as session:
        balances = session.execute(
            sa.select(BUCKET.c.committed, BUCKET.c.held).order_by(BUCKET.c.key)).all()
        assert [tuple(b) for b in balances] == [(11, 3), (10, 5), (10, 12)]
        rows = {r.id: r for r in session.execute(sa.select(RESERVATION))}
        assert rows["res_a"].status == "held" and rows["res_a"].resolved_at is None
        assert rows["res_b"].status == "committed" and rows["res_b"].resolved_at is not None


def test_an_overlong_value_is_refused_not_truncated(pg_url: str) -> None:
    # PostgreSQL only: SQLite does not enforce varchar lengths at all.
    engine = create_ledger_engine(pg_url)
    with pytest.raises(psycopg.errors.StringDataRightTruncation), Session(engine) as session, \
            session.begin():
        write_all(session, [], [(RESERVATION, [_reservation("res_" + "x" * 60)])], [])
    with Session(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(RESERVATION)).scalar() == 0
    engine.dispose()
