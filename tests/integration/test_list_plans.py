"""Every list page is an index range in the page's order, stopped by LIMIT: no table scan,
no sort of the table (issue 9, defect 8).

The statements `ledger.listing` actually runs are captured and explained. On
PostgreSQL sequential scans and sorts are priced out first, so a plan with
either means no index could serve the query (the planner would otherwise pick
them freely on tables this small).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from ledger.listing import (
    Listing,
    ReservationFilter,
    encode_reference_cursor,
    encode_reservation_cursor,
)

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
AFTER = encode_reservation_cursor(NOW, "res_0")

CASES: list[tuple[str, Callable[[Listing], Any], str]] = [
    ("all reservations", lambda lst: lst.reservations(ReservationFilter(), AFTER, 50),
     "ix_reservation_created_id"),
    ("a vendor's, since", lambda lst: lst.reservations(
        ReservationFilter(owner="key_1", since=NOW), AFTER, 50), "ix_reservation_owner_created_id"),
    ("by status", lambda lst: lst.reservations(
        ReservationFilter(status="expired", until=NOW), AFTER, 50), "ix_reservation_created_id"),
    ("a vendor's by status", lambda lst: lst.reservations(
        ReservationFilter(owner="key_1", status="held"), None, 50),
     "ix_reservation_owner_created_id"),
    ("operators", lambda lst: lst.references(
        "operators", None, encode_reference_cursor("operators", "m"), 50), "pk:operator"),
    ("consignees", lambda lst: lst.references(
        "consignees", None, encode_reference_cursor("consignees", "m"), 50), "pk:consignee"),
    ("an operator's consignees", lambda lst: lst.references(
        "consignees", "op1", encode_reference_cursor("consignees", "m"), 50),
     "ix_consignee_operator_id"),
    ("licences", lambda lst: lst.references(
        "licenses", None, encode_reference_cursor("licenses", "m"), 50), "pk:license"),
]


def _captured(engine: sa.Engine, run: Callable[[Listing], Any]) -> tuple[str, Any]:
    seen: list[tuple[str, Any]] = []

    def capture(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        run(Listing(engine, lambda: NOW))
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    return seen[0]  # the page query (a reservation page then reads its lines by key)


@pytest.mark.parametrize(("name", "run", "index"), CASES, ids=[c[0] for c in CASES])
def test_a_page_is_an_index_range_with_limit(engine: sa.Engine, name: str,
                                             run: Callable[[Listing], Any], index: str) -> None:
    statement, params = _captured(engine, run)
    assert "LIMIT" in statement.upper()
    postgres = engine.dialect.name == "postgresql"
    if index.startswith("pk:"):  # the primary key's index, as each dialect names it
        table = index[3:]
        index = f"pk_{table}" if postgres else f"sqlite_autoindex_{table}_1"
    with engine.connect() as conn:
        if postgres:
            conn.exec_driver_sql("SET enable_seqscan = off")
            conn.exec_driver_sql("SET enable_sort = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", params))
            assert "Seq Scan" not in plan and "Sort" not in plan, plan
            assert "Limit" in plan and index in plan, plan
        else:
            plan = "\n".join(r[-1] for r in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", params))
            assert "TEMP B-TREE" not in plan, plan
            assert f"INDEX {index} " in plan, plan
