"""The role x endpoint matrix: 401 without a key, 403 outside role or scope, else allowed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, line, seed_consignee, seed_operator

OP = {"name": "x", "hq_country": "US", "veu": None}
CONS = {"name": "x", "country": "AE", "operator_id": "op1"}
LIC = {"country": "AE", "tpp": 5, "valid_from": "2025-01-01", "valid_to": "2025-12-31"}
# lic1 names ae-1, a consignee of op1: the operator key (op1's) reads it.
OWN_LIC = dict(LIC, consignee_id="ae-1")
RES = {"lines": [line("AE", "ae-1")], "hold_seconds": 60}
ALL = {"admin", "vendor", "operator", "auditor"}

# (method, path, body, roles allowed). {rid} is a reservation the vendor key owns.
MATRIX: list[tuple[str, str, Any, set[str]]] = [
    ("PUT", "/v1/operators/o9", OP, {"admin"}),
    ("PUT", "/v1/consignees/c9", CONS, {"admin"}),
    ("PUT", "/v1/licenses/l9", LIC, {"admin"}),
    ("GET", "/v1/operators/op1", None, ALL),
    ("GET", "/v1/consignees/ae-1", None, ALL),
    ("GET", "/v1/licenses/lic1", None, ALL),
    ("GET", "/v1/operators", None, ALL),
    ("GET", "/v1/consignees", None, ALL),
    ("GET", "/v1/licenses", None, ALL),
    ("GET", "/v1/chips", None, ALL),
    ("GET", "/v1/policy", None, ALL),
    ("POST", "/v1/reservations", RES, {"admin", "vendor"}),
    ("GET", "/v1/reservations", None, {"admin", "vendor", "auditor"}),
    ("GET", "/v1/reservations/{rid}", None, {"admin", "vendor", "auditor"}),
    ("POST", "/v1/reservations/{rid}/commit", None, {"admin", "vendor"}),
    ("POST", "/v1/reservations/{rid}/release", None, {"admin", "vendor"}),
    ("POST", "/v1/reservations:batch", {"reservations": [dict(RES, idempotency_key="b1")]},
     {"admin", "vendor"}),
    ("POST", "/v1/evaluate", RES, {"admin", "vendor", "auditor"}),
    ("GET", "/v1/headroom?country=AE", None, ALL),
    ("GET", "/v1/entries", None, {"admin", "auditor", "operator"}),
    ("GET", "/v1/balances", None, {"admin", "auditor", "operator"}),
    ("GET", "/v1/audit/verify", None, {"admin", "auditor"}),
]


@pytest.fixture
def world(sqlite_api: Api) -> Api:
    api = sqlite_api
    seed_operator(api)
    seed_consignee(api, "ae-1", "AE")
    assert api.put("/v1/licenses/lic1", OWN_LIC).status_code == 200
    return api


@pytest.mark.parametrize(("method", "path", "body", "allowed"), MATRIX,
                         ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
@pytest.mark.parametrize("role", sorted(ALL))
def test_matrix(world: Api, role: str, method: str, path: str, body: Any,
                allowed: set[str]) -> None:
    rid = world.post("/v1/reservations", RES, role="vendor",
                     headers={"Idempotency-Key": "owner"}).json()["id"]
    path = path.replace("{rid}", rid)
    headers = {"Idempotency-Key": f"m-{role}"} if path == "/v1/reservations" else {}
    r = world.call(method, path, role, json=body, headers=headers)
    if role in allowed:
        assert r.status_code in (200, 201), (role, path, r.text)
    else:
        assert r.status_code == 403, (role, path, r.text)
        assert r.json()["type"] == "https://tpp-ledger.dev/problems/forbidden"


@pytest.mark.parametrize(("method", "path", "body", "allowed"), MATRIX,
                         ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_missing_or_unknown_key_is_401(world: Api, method: str, path: str, body: Any,
                                       allowed: set[str]) -> None:
    path = path.replace("{rid}", "res_x")
    for headers in ({}, {"Authorization": "Bearer tpl_not-a-key"}, {"Authorization": "Basic x"}):
        r = world.client.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == "https://tpp-ledger.dev/problems/unauthorized"


def test_operator_key_sees_only_its_operator(world: Api) -> None:
    api = world
    seed_operator(api, "op2")
    seed_consignee(api, "ae-2", "AE", operator_id="op2")
    api.reserve([line("AE", "ae-1")], key="a")
    api.reserve([line("AE", "ae-2", operator_id="op2")], key="b")
    for path in ("/v1/headroom?country=AE&operator_id=op2", "/v1/entries?operator_id=op2",
                 "/v1/balances?operator_id=op2", "/v1/headroom?country=AE&consignee_id=ae-2"):
        assert api.get(path, role="operator").status_code == 403
        assert api.get(path, role="operator2").status_code == 200
    own = api.get("/v1/entries", role="operator").json()["items"]
    assert own and {e["operator_id"] for e in own} == {"op1"}
    assert {e["operator_id"] for e in api.get("/v1/entries", role="auditor").json()["items"]} \
        == {"op1", "op2"}
    assert api.get("/v1/entries?operator_id=op1", role="operator").status_code == 200
    assert api.get("/v1/headroom?country=AE&consignee_id=ae-1", role="operator").status_code == 200
    assert api.get("/v1/headroom?country=AE&consignee_id=nobody", role="operator").status_code \
        == 403
