"""A line's consignee must be its operator's own; operators never read another's consignees.

Issue 9, defect 1: a line naming operator opA and a consignee registered under
opB (or under no operator) was accepted and showed opB's consignee in opA's
history and balances.
"""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, line, seed_consignee, seed_operator


def _setup(api: Api) -> None:
    seed_operator(api, "op1")
    seed_operator(api, "op2")
    seed_consignee(api, "ke-a", "KE", operator_id="op1")
    seed_consignee(api, "ke-b", "KE", operator_id="op2")
    seed_consignee(api, "ke-free", "KE", operator_id=None)


def _nothing_written(api: Api) -> None:
    assert api.get("/v1/entries", role="auditor").json()["items"] == []
    assert api.get("/v1/balances", role="auditor").json()["buckets"] == []


def test_line_with_another_operators_consignee_is_422_and_holds_nothing(api: Api) -> None:
    _setup(api)
    r = api.reserve([line("KE", "ke-b", operator_id="op1")], key="cross")
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"].endswith("/invalid-input")
    assert "'ke-b'" in problem["detail"] and "'op2'" in problem["detail"]
    assert "'op1'" in problem["detail"]
    assert problem["field"] == "lines[0].consignee_id"
    _nothing_written(api)


def test_line_with_a_consignee_of_no_operator_is_422(api: Api) -> None:
    _setup(api)
    r = api.reserve([line("KE", "ke-free", operator_id="op1")], key="free")
    assert r.status_code == 422, r.text
    assert "no operator" in r.json()["detail"]
    _nothing_written(api)


def test_a_bad_line_among_good_ones_holds_nothing(api: Api) -> None:
    _setup(api)
    r = api.reserve([line("KE", "ke-a", operator_id="op1"),
                     line("KE", "ke-b", operator_id="op1")], key="mixed")
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "lines[1].consignee_id"
    _nothing_written(api)


def test_evaluate_refuses_it_too(api: Api) -> None:
    _setup(api)
    r = api.post("/v1/evaluate", {"lines": [line("KE", "ke-b", operator_id="op1")]},
                 role="vendor")
    assert r.status_code == 422, r.text


def test_consignee_naming_an_unknown_operator_is_422(api: Api) -> None:
    r = api.put("/v1/consignees/c1", {"name": "C", "country": "KE", "operator_id": "nobody",
                                      "group_id": None})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "operator_id" and "'nobody'" in r.json()["detail"]
    assert api.get("/v1/consignees/c1").status_code == 404


def test_licence_naming_an_unknown_or_misplaced_consignee_is_422(api: Api) -> None:
    _setup(api)
    body: dict[str, Any] = {"country": "KE", "tpp": 1_000, "consignee_id": "ghost",
                            "valid_from": "2025-01-01", "valid_to": "2027-12-31"}
    r = api.put("/v1/licenses/L1", body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "consignee_id" and "'ghost'" in r.json()["detail"]
    r = api.put("/v1/licenses/L1", body | {"consignee_id": "ke-a", "country": "AE"})
    assert r.status_code == 422, r.text
    assert api.get("/v1/licenses/L1").status_code == 404
    assert api.put("/v1/licenses/L1", body | {"consignee_id": "ke-a"}).status_code == 200


def test_operator_reads_never_show_another_operators_consignee(api: Api) -> None:
    """History made while a consignee was op1's stays op1's lines, but once the consignee
    is registered under op2 it is op2's party: op1's key no longer reads it anywhere."""
    _setup(api)
    assert api.reserve([line("KE", "ke-a", operator_id="op1")], key="a").status_code == 201
    assert api.reserve([line("KE", "ke-b", operator_id="op2")], key="b").status_code == 201
    seed_consignee(api, "ke-a2", "KE", operator_id="op1")
    assert api.reserve([line("KE", "ke-a2", operator_id="op1")], key="c").status_code == 201
    # ke-a moves to op2: the history still holds op1 lines to it.
    seed_consignee(api, "ke-a", "KE", operator_id="op2")

    def consignees_seen(path: str) -> set[str]:
        body = api.get(path, role="operator").json()  # the operator key of op1
        assert "items" in body or "buckets" in body, body
        if "items" in body:
            return {e["consignee_id"] for e in body["items"]}
        return {b["key"].split(":", 1)[1] for b in body["buckets"] if b["kind"] == "lpp"}

    for path in ("/v1/entries", "/v1/entries?country=KE", "/v1/entries?operator_id=op1"):
        assert consignees_seen(path) == {"ke-a2"}, path
    assert consignees_seen("/v1/balances") == {"ke-a2"}
    assert consignees_seen("/v1/balances?country=KE") == {"ke-a2"}
    # An auditor still reads the whole history, as recorded.
    everyone = api.get("/v1/entries", role="auditor").json()["items"]
    assert {e["consignee_id"] for e in everyone} == {"ke-a", "ke-b", "ke-a2"}
