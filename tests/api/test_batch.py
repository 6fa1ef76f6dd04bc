"""POST /v1/reservations:batch: many reservations, one request, each its own answer."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import H100, Api, line, seed_consignee, seed_operator


def _item(key: str, *lines: dict[str, Any]) -> dict[str, Any]:
    return {"idempotency_key": key, "lines": list(lines), "hold_seconds": 3600}


def test_batch_answers_each_reservation_on_its_own(api: Api) -> None:
    seed_operator(api, "op1", hq="SG")
    seed_consignee(api, "sg-lab", "SG")
    seed_consignee(api, "cn-lab", "CN")
    body = {"reservations": [
        _item("b1", line("SG", "sg-lab", quantity=1000)),
        _item("b2", line("SG", "sg-lab", quantity=1000)),  # over LPP after b1
        _item("b3", line("SG", "nobody")),  # unknown consignee
        _item("b4", line("CN", "cn-lab")),  # tier 3
        _item("b5", line("SG", "sg-lab", quantity=699)),  # fits exactly
    ]}
    r = api.post("/v1/reservations:batch", body, role="vendor")
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [201, 409, 422, 409, 201]
    assert results[0]["reservation"]["lines"][0]["path"] == "lpp"
    assert results[1]["problem"]["violations"][0]["constraint"] == "lpp"
    assert results[2]["problem"]["field"] == "lines[0].consignee_id"
    assert results[3]["problem"]["violations"][0]["constraint"] == "tier3"
    assert results[4]["reservation"]["tpp"] == 699 * H100

    # The same batch again replays every first answer and holds nothing twice.
    again = api.post("/v1/reservations:batch", body, role="vendor").json()["results"]
    assert [x["status"] for x in again] == [201, 409, 422, 409, 201]
    assert again[0]["reservation"]["id"] == results[0]["reservation"]["id"]
    entries = api.get("/v1/entries?limit=100").json()["items"]
    assert len(entries) == 2


def test_batch_limits_and_roles(api: Api) -> None:
    item = _item("x", line("SG", "sg-lab"))
    assert api.post("/v1/reservations:batch", {"reservations": []},
                    role="vendor").status_code == 422
    too_many = {"reservations": [dict(item, idempotency_key=f"k{i}") for i in range(1001)]}
    assert api.post("/v1/reservations:batch", too_many, role="vendor").status_code in (413, 422)
    assert api.post("/v1/reservations:batch", {"reservations": [item]},
                    role="auditor").status_code == 403
    assert api.post("/v1/reservations:batch", {"reservations": [item]},
                    role=None).status_code == 401
    missing_key = {"reservations": [{"lines": [line("SG", "sg-lab")]}]}
    r = api.post("/v1/reservations:batch", missing_key, role="vendor")
    assert r.status_code == 422 and "idempotency_key" in r.json()["field"]
