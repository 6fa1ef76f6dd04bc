"""`column IN (values)` as one array parameter on PostgreSQL.

SQLAlchemy renders `IN (...)` with one placeholder per value, so every list
length is a new SQL text: psycopg parses it anew (a regex over the whole
statement), and PostgreSQL plans it anew. `= ANY(array)` keeps one text per
query, parsed, prepared and planned once. SQLite has no arrays: there the
plain IN list is used (it is cheap in process).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def _array(column: Any, values: Iterable[Any]) -> Any:
    return sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type))


def among(dialect: str, column: Any, values: Iterable[Any]) -> Any:
    """`column IN values`."""
    if dialect == "postgresql":
        return column == sa.any_(_array(column, values))
    return column.in_(list(values))


def rows_among(dialect: str, columns: Sequence[Any], rows: Iterable[Sequence[Any]]) -> Any:
    """`(c1, c2, ...) IN (rows)`: on PostgreSQL, one array per column, zipped by unnest."""
    rows = list(rows)
    if dialect != "postgresql":
        return sa.tuple_(*columns).in_(rows)
    arrays = [sa.func.unnest(_array(c, (r[i] for r in rows))) for i, c in enumerate(columns)]
    return sa.tuple_(*columns).in_(sa.select(*arrays))


def dialect_of(session: Any) -> str:
    return str(session.get_bind().dialect.name)
