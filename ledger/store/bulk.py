"""Bulk inserts: PostgreSQL's COPY where available, executemany elsewhere.

COPY moves a batch's thousands of rows in one stream instead of one round
trip (or one pipelined statement) per row; it is the difference between a
group commit that costs per row and one that costs per batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

COPY_THRESHOLD = 16


def _copy_value(value: Any, column: sa.Column[Any]) -> Any:
    if value is None:
        return None
    if isinstance(column.type, sa.JSON):
        return json.dumps(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)  # columns hold naive UTC
    return value


def bulk_insert(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts `rows` (dicts keyed by column name; missing keys are NULL) in one go."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        # A few rows: the pipelined executemany beats COPY's extra round trips.
        session.execute(sa.insert(table), list(rows))
        return
    columns = list(table.columns)
    names = ", ".join(f'"{c.name}"' for c in columns)
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(
        f'COPY "{table.name}" ({names}) FROM STDIN'
    ) as copy:
        for row in rows:
            copy.write_row([_copy_value(row.get(c.name), c) for c in columns])
