"""Bulk writes: one round trip per transaction's flush on PostgreSQL.

On PostgreSQL every insert and update of a flush is one statement per table
whatever the number of rows (`unnest` over one binary array per column), all
sent in one psycopg pipeline and one sync: a group commit then costs per
batch, not per statement or per row. (COPY was measured no cheaper per row,
57-78 us a line either way, and needs a round trip per table.) Elsewhere
(SQLite, in-process) plain executemany is already cheap.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ledger.store.models import UTCDateTime


@dataclass
class Update:
    """Many rows of `table` updated by `key`: each row is (value per column of `sets`,
    then the key). A column of `adds` is increased by its value, the others replaced.
    Keys must be distinct (one row each)."""

    table: sa.Table
    key: str
    sets: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    adds: frozenset[str] = frozenset()

    def statement(self) -> Any:
        """The same update for SQLAlchemy's executemany (SQLite), parameters by name."""
        t = self.table
        return sa.update(t).where(t.c[self.key] == sa.bindparam("k_")).values({
            c: t.c[c] + sa.bindparam(c) if c in self.adds
            else sa.bindparam(c, type_=t.c[c].type) for c in self.sets})

    def params(self) -> list[dict[str, Any]]:
        names = (*self.sets, "k_")
        return [dict(zip(names, r, strict=True)) for r in self.rows]


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)  # columns hold naive UTC


@lru_cache(maxsize=64)
def _converters(table: sa.Table) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    """Per column, how a Python value becomes a statement parameter (None: as it is)."""
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


def _row_values(row: dict[str, Any], converters: Any) -> list[Any]:
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
                session.execute(update.statement(), update.params(),
                                execution_options={"synchronize_session": False})
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    with raw.pipeline(), raw.cursor() as cursor:
        for table, column, values in deletes:
            # Names come from table metadata, never from input; values are bound.
            cursor.execute(f'DELETE FROM "{table.name}" WHERE "{column}" = ANY(%s)',  # noqa: S608
                           [list(values)])
        for table, rows in inserts:
            if rows:
                _insert_values(cursor, table, rows)
        for update in updates:
            if update.rows:
                columns = [list(c) for c in zip(*update.rows, strict=True)]
                cursor.execute(_unnest_update(update.table, update.key, update.sets,
                                              update.adds),
                               [[_plain(v) for v in c] for c in columns])


@lru_cache(maxsize=64)
def _unnest_insert(table: sa.Table) -> str:
    """INSERT ... SELECT FROM unnest(one array per column): one fixed statement for any
    number of rows, so psycopg parses it once and PostgreSQL gets a handful of
    parameters instead of one per value."""
    names = ", ".join(f'"{c.name}"' for c in table.columns)
    arrays = ", ".join(f"%b::{_array_type(c)}" for c in table.columns)  # binary: no escaping
    return f'INSERT INTO "{table.name}" ({names}) SELECT * FROM unnest({arrays})'  # noqa: S608


def _array_type(column: sa.Column[Any]) -> str:
    # Strings as text[]: an explicit cast to varchar(n) would silently truncate,
    # while the statement's own assignment to the column refuses an overlong value.
    compiled = column.type.compile(dialect=postgresql.dialect())
    return "text[]" if compiled.startswith("VARCHAR") else f"{compiled}[]"


@lru_cache(maxsize=64)
def _unnest_update(table: sa.Table, key: str, sets: tuple[str, ...],
                   adds: frozenset[str]) -> str:
    """UPDATE ... FROM unnest(one array per column): every row in one statement."""
    columns = (*sets, key)
    arrays = ", ".join(f"%b::{_array_type(table.c[c])}" for c in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    assignments = ", ".join(
        f'"{c}" = t."{c}" + d."{c}"' if c in adds else f'"{c}" = d."{c}"' for c in sets)
    return (f'UPDATE "{table.name}" AS t SET {assignments} '  # noqa: S608 (metadata names)
            f'FROM unnest({arrays}) AS d({names}) WHERE t."{key}" = d."{key}"')


def _insert_values(cursor: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    converters = _converters(table)
    columns = [list(c) for c in zip(*(_row_values(row, converters) for row in rows), strict=True)]
    cursor.execute(_unnest_insert(table), columns)
