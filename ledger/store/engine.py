"""Engine factory and the dialect details the service relies on.

SQLite: WAL, synchronous=FULL (a commit is durable before it is acknowledged),
a busy timeout on every connection, and `BEGIN IMMEDIATE` for write
transactions, because `SELECT ... FOR UPDATE` compiles to nothing there.
PostgreSQL: psycopg 3; writers lock rows with `FOR UPDATE`.

Every transaction that may write, on SQLite, must be opened through
`writer(engine)`. A plain (deferred) `BEGIN` that reads and then writes has
to upgrade its read snapshot to the write lock; if another connection holds
that lock, or committed since the snapshot was taken, SQLite answers
SQLITE_BUSY ("database is locked") at once and never waits out the busy
timeout, because waiting could not help a stale snapshot. `BEGIN IMMEDIATE`
takes the write lock before the first read, waiting up to the busy timeout.
Read-only transactions stay deferred: WAL readers never block writers.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

WRITE_OPTION = "ledger_write"
# How long a SQLite connection waits for the write lock before "database is locked".
BUSY_TIMEOUT_SECONDS = 60


def normalize_url(url: str) -> str:
    """Pick our driver for plain `postgresql://` and `sqlite://` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_ledger_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine whose `writer(engine)` transactions serialize correctly on both dialects."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        connect_args = kwargs.pop("connect_args", {})
        # Autocommit at the driver level so that we issue BEGIN ourselves.
        connect_args.setdefault("isolation_level", None)
        connect_args.setdefault("check_same_thread", False)
        connect_args.setdefault("timeout", BUSY_TIMEOUT_SECONDS)
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
        _install_sqlite_hooks(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return sa.create_engine(url, **kwargs)


def _install_sqlite_hooks(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        # Also set by the driver's `timeout`; stated here so that no connection of
        # this engine (whatever its connect_args) is ever without one.
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def writer(engine: sa.Engine) -> sa.Engine:
    """The same engine, marked so SQLite opens its transactions with BEGIN IMMEDIATE
    (no effect on PostgreSQL). Use it for every transaction that may write."""
    return engine.execution_options(**{WRITE_OPTION: True})
