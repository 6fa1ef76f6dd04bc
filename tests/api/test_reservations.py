"""Reservations through HTTP: create, idempotency, commit, release, get, evaluate, limits."""

from __future__ import annotations

import json

import pytest

from api.schemas import MAX_LINES
from tests.api.conftest import H100, Api, bucket, line, seed_consignee, seed_operator

PROBLEMS = "https://tpp-ledger.dev/problems/"


@pytest.fixture
def seeded(api: Api) -> Api:
    seed_operator(api)
    seed_consignee(api, "ae-1", "AE")
    return api


def test_reserve_commit_release_and_repeats(seeded: Api) -> None:
    api = seeded
    r = api.reserve([line("AE", "ae-1", quantity=100)], key="k1")
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "held" and body["id"].startswith("res_")
    assert body["expires_at"] == "2025-06-02T13:00:00Z"
    assert body["lines"][0] == {"line": 0, "path": "lpp", "tpp": 100 * H100,
                                "destination_country": "AE", "operator_id": "op1",
                                "consignee_id": "ae-1", "chip": "H100-SXM", "quantity": 100,
                                "license_id": None}
    rid = body["id"]
    first = api.post(f"/v1/reservations/{rid}/commit", role="vendor")
    assert first.status_code == 200 and first.json()["status"] == "committed"
    again = api.post(f"/v1/reservations/{rid}/commit", role="vendor")
    assert again.status_code == 200 and again.json() == first.json()
    late = api.post(f"/v1/reservations/{rid}/release", role="vendor")
    assert late.status_code == 409 and late.json()["type"] == PROBLEMS + "already-committed"
    assert api.get(f"/v1/reservations/{rid}", role="vendor").json()["status"] == "committed"

    rid2 = api.reserve([line("AE", "ae-1")], key="k2").json()["id"]
    rel = api.post(f"/v1/reservations/{rid2}/release", role="vendor")
    assert rel.status_code == 200 and rel.json()["status"] == "released"
    assert api.post(f"/v1/reservations/{rid2}/release", role="vendor").json() == rel.json()
    c = api.post(f"/v1/reservations/{rid2}/commit", role="vendor")
    assert c.status_code == 409 and c.json()["type"] == PROBLEMS + "already-released"


def test_idempotency_key(seeded: Api) -> None:
    api = seeded
    lines = [line("AE", "ae-1", quantity=10)]
    first = api.reserve(lines, key="same")
    replay = api.reserve(lines, key="same")
    assert replay.status_code == 201 and replay.json()["id"] == first.json()["id"]
    head = api.get("/v1/headroom?country=AE&consignee_id=ae-1", role="vendor").json()
    assert bucket(head, "lpp")["held"] == 10 * H100  # held once
    other = api.reserve([line("AE", "ae-1", quantity=11)], key="same")
    assert other.status_code == 422
    assert other.json()["type"] == PROBLEMS + "idempotency-key-reused"
    missing = api.post("/v1/reservations", {"lines": lines}, role="vendor")
    assert missing.status_code == 422 and missing.json()["field"] == "Idempotency-Key"
    # A denial is replayed too: same status, nothing held.
    big = [line("AE", "ae-1", quantity=10_000)]
    assert api.reserve(big, key="deny").status_code == 409
    assert api.reserve(big, key="deny").status_code == 409


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"quantity": 1.0}, "lines[0].quantity"),
        ({"quantity": True}, "lines[0].quantity"),
        ({"quantity": "5"}, "lines[0].quantity"),
        ({"quantity": 0}, "lines[0].quantity"),
        ({"quantity": -3}, "lines[0].quantity"),
        ({"chip": None, "quantity": None, "tpp": 2.5}, "lines[0].tpp"),
        ({"chip": "NOPE-9000"}, "lines[0].chip"),
        ({"destination_country": "ZZ"}, "lines[0].destination_country"),
        ({"operator_id": "ghost"}, "lines[0].operator_id"),
        ({"consignee_id": "ghost"}, "lines[0].consignee_id"),
        ({"destination_country": "SG"}, "lines[0].consignee_id"),
        ({"license_id": "ghost"}, "lines[0].license_id"),
        ({"surprise": 1}, "lines[0]"),
    ],
)
def test_malformed_lines_are_422_naming_the_field(seeded: Api, patch: dict, field: str) -> None:
    bad = {**line("AE", "ae-1"), **patch}
    r = seeded.reserve([bad], key="k")
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == PROBLEMS + "invalid-input"
    assert r.json()["field"].startswith(field), r.json()


def test_limits(seeded: Api) -> None:
    api = seeded
    assert api.post("/v1/reservations", {"lines": []}, role="vendor",
                    headers={"Idempotency-Key": "e"}).json()["field"] == "lines"
    many = [line("AE", "ae-1")] * (MAX_LINES + 1)
    r = api.reserve(many, key="many")
    assert r.status_code == 422 and r.json()["field"] == "lines"
    huge = json.dumps({"lines": [line("AE", "ae-1")], "pad": "x" * (2 * 1024 * 1024)})
    r = api.call("POST", "/v1/reservations", "vendor", content=huge,
                 headers={"Idempotency-Key": "huge", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["type"] == PROBLEMS + "body-too-large"
    r = api.call("POST", "/v1/reservations", "vendor", content=b"{not json",
                 headers={"Idempotency-Key": "nj", "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["field"] == "body"
    for hold in (0, 30 * 86400 + 1, 1.5):
        r = api.reserve([line("AE", "ae-1")], key=f"h{hold}", hold_seconds=hold)  # type: ignore[arg-type]
        assert r.status_code == 422 and r.json()["field"] == "hold_seconds"


def test_vendor_owns_its_reservations(seeded: Api) -> None:
    api = seeded
    rid = api.reserve([line("AE", "ae-1")], key="k").json()["id"]
    for method, path in [("GET", f"/v1/reservations/{rid}"),
                         ("POST", f"/v1/reservations/{rid}/commit"),
                         ("POST", f"/v1/reservations/{rid}/release")]:
        r = api.call(method, path, "vendor2")
        assert r.status_code == 403 and r.json()["type"] == PROBLEMS + "forbidden"
    assert api.get(f"/v1/reservations/{rid}", role="auditor").status_code == 200
    assert api.get(f"/v1/reservations/{rid}").json()["owner"] == \
        api.get(f"/v1/reservations/{rid}", role="vendor").json()["owner"]
    assert api.get("/v1/reservations/res_nope", role="vendor").status_code == 404


def test_evaluate_writes_nothing(seeded: Api) -> None:
    api = seeded
    r = api.post("/v1/evaluate", {"lines": [line("AE", "ae-1", quantity=10)]}, role="vendor")
    assert r.status_code == 200
    body = r.json()
    assert body["allowed"] is True and body["violations"] == []
    assert body["lines"][0]["path"] == "lpp" and body["lines"][0]["tpp"] == 10 * H100
    denied = api.post("/v1/evaluate", {"lines": [line("AE", "ae-1", quantity=2000)]},
                      role="vendor").json()
    assert denied["allowed"] is False
    assert {"line", "constraint", "key", "cap", "used", "requested", "rule", "reason"} == \
        set(denied["violations"][0])
    assert api.get("/v1/entries", role="auditor").json()["items"] == []


def test_only_admins_and_vendors_reserve_and_the_role_is_answered_before_the_body(
        seeded: Api) -> None:
    api = seeded
    for role in ("auditor", "operator"):
        good = api.call("POST", "/v1/reservations", role,
                        json={"lines": [line("AE", "ae-1")]}, headers={"Idempotency-Key": role})
        assert good.status_code == 403 and good.json()["type"] == PROBLEMS + "forbidden"
        bad = api.call("POST", "/v1/reservations", role, content=b"{not json",
                       headers={"Idempotency-Key": "nj", "Content-Type": "application/json"})
        assert bad.status_code == 403
    assert api.call("POST", "/v1/reservations", None,
                    json={"lines": [line("AE", "ae-1")]},
                    headers={"Idempotency-Key": "anon"}).status_code == 401
