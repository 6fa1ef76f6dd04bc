"""Engine factory and the dialect details the service relies on.

SQLite: WAL, synchronous=FULL (a commit is durable before it is acknowledged),
a busy timeout, and `BEGIN IMMEDIATE` for write transactions, because
`SELECT ... FOR UPDATE` compiles to nothing there.
PostgreSQL: psycopg 3; writers lock rows with `FOR UPDATE`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

WRITE_OPTION = "ledger_write"


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
        connect_args.setdefault("timeout", 60)
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
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def writer(engine: sa.Engine) -> sa.Engine:
    """The same engine, marked so SQLite opens its transactions with BEGIN IMMEDIATE."""
    return engine.execution_options(**{WRITE_OPTION: True})
