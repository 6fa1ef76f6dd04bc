"""Bulk inserts: PostgreSQL's COPY where available, executemany elsewhere.

COPY moves a batch's thousands of rows in one stream instead of one round
trip (or one pipelined statement) per row; it is the difference between a
group commit that costs per row and one that costs per batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.store.models import UTCDateTime

COPY_THRESHOLD = 16


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)  # columns hold naive UTC


@lru_cache(maxsize=64)
def _converters(table: sa.Table) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    """Per column, how a Python value becomes a COPY value (None: as it is)."""
    out: list[tuple[str, Callable[[Any], Any] | None]] = []
    for column in table.columns:
        if isinstance(column.type, sa.JSON):
            out.append((column.name, json.dumps))
        elif isinstance(column.type, UTCDateTime):
            out.append((column.name, _naive_utc))
        else:
            out.append((column.name, None))
    return tuple(out)


def bulk_insert(session: Session, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Inserts `rows` (dicts keyed by column name; missing keys are NULL) in one go."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        # A few rows: the pipelined executemany beats COPY's extra round trips.
        session.execute(sa.insert(table), list(rows))
        return
    converters = _converters(table)
    names = ", ".join(f'"{name}"' for name, _ in converters)
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(
        f'COPY "{table.name}" ({names}) FROM STDIN'
    ) as copy:
        for row in rows:
            copy.write_row([
                value if convert is None or value is None else convert(value)
                for name, convert in converters
                for value in (row.get(name),)
            ])
