"""Database down: 503 with Retry-After, nothing written, recovery without a restart.

Real PostgreSQL: the test database stops accepting connections and its open
ones are terminated, then it is opened again; the same app must recover.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from tests.api.conftest import Api, line, seed_consignee, seed_operator
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres


def set_reachable(database: str, reachable: bool) -> None:
    admin = sa.create_engine(
        sa.engine.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if reachable else "false"}'
        )
        if not reachable:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
    admin.dispose()


def test_database_down_is_503_then_recovers(pg_url: str, start_api: Callable[..., Api]) -> None:
    api = start_api(pg_url)
    database = sa.engine.make_url(pg_url).database
    assert database is not None
    seed_operator(api)
    seed_consignee(api, "sg-1", "SG")
    rid = api.reserve([line("SG", "sg-1")], key="before").json()["id"]
    entries_before = len(api.get("/v1/entries", role="auditor").json()["items"])

    set_reachable(database, False)
    try:
        for call in (
            lambda: api.reserve([line("SG", "sg-1")], key="during"),
            lambda: api.post(f"/v1/reservations/{rid}/commit", role="vendor"),
            lambda: api.get("/v1/headroom?country=SG&consignee_id=sg-1", role="vendor"),
            lambda: api.get("/v1/entries", role="auditor"),
            lambda: api.put("/v1/operators/op9", {"name": "x", "hq_country": "US"}),
            lambda: api.get("/ready", role=None),
        ):
            r = call()
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "2"
            assert r.json()["type"] == "https://tpp-ledger.dev/problems/unavailable"
        assert api.get("/health", role=None).status_code == 200  # liveness needs no database
    finally:
        set_reachable(database, True)

    assert api.get("/ready", role=None).status_code == 200  # same app, no restart
    assert len(api.get("/v1/entries", role="auditor").json()["items"]) == entries_before
    assert api.get(f"/v1/reservations/{rid}", role="vendor").json()["status"] == "held"
    assert api.reserve([line("SG", "sg-1")], key="after").status_code == 201
    assert api.get("/v1/operators/op9").status_code == 404  # the PUT during the outage: nothing
