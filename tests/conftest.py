"""Test wiring: real SQLite files and a real PostgreSQL, fresh per test.

PostgreSQL: the schema is migrated once into a template database; each test
gets `CREATE DATABASE ... TEMPLATE` (fast) and drops it after.
SQLite: migrated once into a template file; each test copies it.
Without a reachable PostgreSQL or Redis, their tests are skipped with the
reason, except in CI (CI=true), where they fail: CI must test for real.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.clock import ManualClock
from ledger.policy.ruleset import load_rule_set
from ledger.service import Ledger
from ledger.store.engine import create_ledger_engine
from ledger.store.migrate import upgrade

POSTGRES_URL = os.environ.get(
    "LEDGER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("LEDGER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"
START = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def _unreachable(what: str, exc: Exception) -> None:
    message = f"{what} unreachable ({type(exc).__name__}: {exc})"
    if IN_CI:
        pytest.fail(f"{message}; CI requires it", pytrace=False)
    pytest.skip(message)


def _admin_engine() -> sa.Engine:
    return create_ledger_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_size=1)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Name of a template database holding the migrated schema."""
    name = f"ledger_tmpl_{os.getpid()}"
    try:
        admin = _admin_engine()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        _unreachable("PostgreSQL", exc)
    url = sa.engine.make_url(POSTGRES_URL).set(database=name)
    engine = create_ledger_engine(url.render_as_string(hide_password=False))
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    engine = create_ledger_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = f"ledger_t_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(
        hide_password=False
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "ledger.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per database."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = create_ledger_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(scope="session")
def rule_set():  # type: ignore[no-untyped-def]
    return load_rule_set("ai-diffusion-2025")


@pytest.fixture
def ledger(engine: sa.Engine, rule_set, clock: ManualClock) -> Ledger:  # type: ignore[no-untyped-def]
    return Ledger(engine, rule_set, clock)


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        _unreachable("Redis", exc)
    return REDIS_URL
