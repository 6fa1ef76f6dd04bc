"""API test wiring: the real app (lifespan and all) over a real database, one key per role.

Requests go through Litestar's TestClient: real HTTP semantics into the ASGI
app, which builds its own engine in its lifespan (an engine built here would
belong to another event loop and fail with "attached to a different loop").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from ledger.clock import ManualClock
from ledger.keys import create_key
from ledger.settings import Settings
from ledger.store.engine import create_ledger_engine
from tests.conftest import START

ROLES = ("admin", "vendor", "operator", "auditor")


@dataclass
class Api:
    """A running app plus a bearer key per role (and a second vendor)."""

    client: TestClient[Any]
    keys: dict[str, str]
    clock: ManualClock

    def call(self, method: str, path: str, role: str | None = "admin", **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if role is not None:
            headers["Authorization"] = f"Bearer {self.keys[role]}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, role: str | None = "admin", **kwargs: Any) -> Any:
        return self.call("GET", path, role, **kwargs)

    def put(self, path: str, body: Any, role: str | None = "admin", **kwargs: Any) -> Any:
        return self.call("PUT", path, role, json=body, **kwargs)

    def post(self, path: str, body: Any = None, role: str | None = "admin", **kwargs: Any) -> Any:
        return self.call("POST", path, role, json=body, **kwargs)

    def reserve(self, lines: list[dict[str, Any]], key: str, role: str = "vendor",
                hold_seconds: int = 3600) -> Any:
        return self.post("/v1/reservations", {"lines": lines, "hold_seconds": hold_seconds},
                         role, headers={"Idempotency-Key": key})


def make_keys(database_url: str, operator_id: str = "op1") -> dict[str, str]:
    engine = create_ledger_engine(database_url)
    try:
        keys = {
            role: create_key(engine, role, f"test-{role}", START,
                             operator_id if role == "operator" else None)
            for role in ROLES
        }
        keys["vendor2"] = create_key(engine, "vendor", "test-vendor2", START)
        keys["operator2"] = create_key(engine, "operator", "test-op2", START, "op2")
    finally:
        engine.dispose()
    return keys


@pytest.fixture
def start_api() -> Iterator[Callable[..., Api]]:
    """Starts apps on demand (e.g. with Redis on or off); stops them after the test."""
    stack: list[TestClient[Any]] = []

    def start(database_url: str, redis_url: str | None = None, **settings: Any) -> Api:
        clock = ManualClock(START)
        keys = make_keys(database_url)
        # Scheduled jobs would write (expire, reconcile) behind the tests' backs.
        settings.setdefault("jobs_in_serve", False)
        app = create_app(Settings(database_url=database_url, redis_url=redis_url, **settings),
                         clock=clock)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        return Api(client, keys, clock)

    yield start
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def api(db_url: str, start_api: Callable[..., Api]) -> Api:
    """The app on SQLite and on PostgreSQL (each test runs once per database)."""
    return start_api(db_url)


@pytest.fixture
def sqlite_api(sqlite_url: str, start_api: Callable[..., Api]) -> Api:
    return start_api(sqlite_url)


H100 = 15_832


def seed_operator(api: Api, op_id: str = "op1", hq: str = "US", veu: Any = None,
                  footprint: dict[str, int] | None = None) -> None:
    body: dict[str, Any] = {"name": op_id, "hq_country": hq, "veu": veu}
    if footprint is not None:
        body["footprint"] = footprint
    r = api.put(f"/v1/operators/{op_id}", body)
    assert r.status_code == 200, r.text


def seed_consignee(api: Api, c_id: str, country: str, operator_id: str | None = "op1",
                   group_id: str | None = None) -> None:
    r = api.put(f"/v1/consignees/{c_id}", {"name": c_id, "country": country,
                                          "operator_id": operator_id, "group_id": group_id})
    assert r.status_code == 200, r.text


def seed_license(api: Api, lic_id: str, country: str, tpp: int,
                 consignee_id: str | None = None) -> None:
    r = api.put(f"/v1/licenses/{lic_id}", {"country": country, "tpp": tpp,
                                          "consignee_id": consignee_id,
                                          "valid_from": "2025-01-01", "valid_to": "2027-12-31"})
    assert r.status_code == 200, r.text


def line(country: str, consignee_id: str, operator_id: str = "op1", quantity: int | None = None,
         tpp: int | None = None, license_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"destination_country": country, "operator_id": operator_id,
                           "consignee_id": consignee_id}
    if tpp is not None:
        out["tpp"] = tpp
    else:
        out["chip"], out["quantity"] = "H100-SXM", 1 if quantity is None else quantity
    if license_id is not None:
        out["license_id"] = license_id
    return out


def bucket(headroom: dict[str, Any], kind: str, key: str | None = None) -> dict[str, Any]:
    found = [b for b in headroom["buckets"] if b["kind"] == kind and key in (None, b["key"])]
    assert len(found) == 1, headroom
    return found[0]
