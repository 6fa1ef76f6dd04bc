"""Bulk writes: one round trip per transaction's flush on PostgreSQL.

On PostgreSQL every insert (as multi-row VALUES) and update of a flush goes
out in one psycopg pipeline and one sync, and tables of thousands of rows
stream through COPY: a group commit then costs per batch, not per statement
or per row. Elsewhere (SQLite, in-process) plain executemany is already cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.store.models import UTCDateTime

COPY_ROWS = 2000  # a table this large streams through COPY instead of VALUES
MAX_PARAMS = 30_000  # per statement; PostgreSQL allows 65,535


@dataclass
class Update:
    """`sql` with %s placeholders (PostgreSQL) and the same update in SQLAlchemy."""

    sql: str
    statement: Any
    rows: list[tuple[Any, ...]]
    names: tuple[str, ...]


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


def _plain(value: Any) -> Any:
    return _naive_utc(value) if isinstance(value, datetime) and value.tzinfo else value


def _copy_row(row: dict[str, Any], converters: Any) -> list[Any]:
    return [
        value if convert is None or value is None else convert(value)
        for name, convert in converters
        for value in (row.get(name),)
    ]


def write_all(
    session: Session,
    deletes: list[tuple[sa.Table, str, list[Any]]],
    inserts: list[tuple[sa.Table, list[dict[str, Any]]]],
    updates: list[Update],
) -> None:
    """Deletes (table, column, values), then inserts, then updates, in one go."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        for table, column, values in deletes:
            session.execute(sa.delete(table).where(table.c[column].in_(values)))
        for table, rows in inserts:
            if rows:
                session.execute(sa.insert(table), rows)
        for update in updates:
            if update.rows:
                session.execute(update.statement, [dict(zip(update.names, r, strict=True))
                                                   for r in update.rows],
                                execution_options={"synchronize_session": False})
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    streamed = [(t, rows) for t, rows in inserts if len(rows) >= COPY_ROWS]
    with raw.pipeline(), raw.cursor() as cursor:
        for table, column, values in deletes:
            # Names come from table metadata, never from input; values are bound.
            cursor.execute(f'DELETE FROM "{table.name}" WHERE "{column}" = ANY(%s)',  # noqa: S608
                           [list(values)])
        for table, rows in inserts:
            if rows and len(rows) < COPY_ROWS:
                _insert_values(cursor, table, rows)
        for update in updates:
            if update.rows:
                cursor.executemany(update.sql, [tuple(_plain(v) for v in r)
                                                for r in update.rows])
    for table, rows in streamed:
        _copy(raw, table, rows)


def _insert_values(cursor: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    converters = _converters(table)
    names = ", ".join(f'"{name}"' for name, _ in converters)
    one = "(" + ", ".join(["%s"] * len(converters)) + ")"
    per_statement = max(1, MAX_PARAMS // len(converters))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start:start + per_statement]
        params = [v for row in chunk for v in _copy_row(row, converters)]
        values = ", ".join([one] * len(chunk))
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES {values}'  # noqa: S608 (metadata)
        cursor.execute(sql, params)


def _copy(raw: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    converters = _converters(table)
    names = ", ".join(f'"{name}"' for name, _ in converters)
    with raw.cursor() as cursor, cursor.copy(
        f'COPY "{table.name}" ({names}) FROM STDIN'
    ) as copy:
        for row in rows:
            copy.write_row(_copy_row(row, converters))
