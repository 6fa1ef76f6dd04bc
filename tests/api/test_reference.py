"""Reference data, chips and policy through HTTP."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

PROBLEMS = "https://tpp-ledger.dev/problems/"


def test_operator_put_is_create_or_replace(api: Api) -> None:
    body = {"name": "G42", "hq_country": "AE", "veu": {"type": "NVEU", "country": "AE"},
            "footprint": {"US": 5}}
    first = api.put("/v1/operators/g42", body)
    assert first.status_code == 200
    assert first.json()["veu"] == {"type": "NVEU", "country": "AE"}
    assert api.put("/v1/operators/g42", body).json() == first.json()
    replaced = api.put("/v1/operators/g42", {"name": "G42", "hq_country": "AE", "veu": None})
    assert replaced.json()["veu"] is None and replaced.json()["footprint"] == {}
    for role in ("vendor", "auditor"):
        assert api.get("/v1/operators/g42", role=role).json()["name"] == "G42"
    assert api.get("/v1/operators/g42", role="operator").status_code == 403  # op1's key
    uveu = api.put("/v1/operators/big", {"name": "B", "hq_country": "US", "veu": {"type": "UVEU"}})
    assert uveu.json()["veu"] == {"type": "UVEU", "country": None}


def test_consignee_and_license(api: Api) -> None:
    c = api.put("/v1/consignees/c1", {"name": "C", "country": "AE", "operator_id": None,
                                      "group_id": "g"})
    assert c.status_code == 200 and c.json()["group_id"] == "g"
    lic = api.put("/v1/licenses/L1", {"country": "AE", "consignee_id": "c1", "tpp": 10**9,
                                      "valid_from": "2025-01-01", "valid_to": "2025-12-31"})
    assert lic.status_code == 200
    assert api.get("/v1/licenses/L1", role="auditor").json()["tpp"] == 10**9
    assert api.get("/v1/consignees/c1", role="vendor").json()["country"] == "AE"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/operators/o", {"name": "x", "hq_country": "ZZ"}, "hq_country"),
        ("/v1/operators/o", {"name": "x", "hq_country": "ae"}, "hq_country"),
        ("/v1/operators/o", {"name": "x", "hq_country": "AE", "veu": {"type": "XVEU"}}, "veu"),
        ("/v1/operators/o", {"name": "x", "hq_country": "AE", "footprint": {"US": 1.5}},
         "footprint"),
        ("/v1/operators/bad%20id", {"name": "x", "hq_country": "AE"}, "operator_id"),
        ("/v1/consignees/c", {"name": "x", "country": "XX"}, "country"),
        ("/v1/licenses/l", {"country": "AE", "tpp": 1.0, "valid_from": "2025-01-01",
                            "valid_to": "2025-12-31"}, "tpp"),
        ("/v1/licenses/l", {"country": "AE", "tpp": True, "valid_from": "2025-01-01",
                            "valid_to": "2025-12-31"}, "tpp"),
        ("/v1/licenses/l", {"country": "AE", "tpp": 5, "valid_from": "2025-02-01",
                            "valid_to": "2025-01-01"}, "valid_to"),
    ],
)
def test_reference_422(api: Api, path: str, body: dict, field: str) -> None:
    r = api.put(path, body)
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEMS + "invalid-input"
    assert r.json()["field"].startswith(field)


def test_missing_reference_is_404(api: Api) -> None:
    for path in ("/v1/operators/nope", "/v1/consignees/nope", "/v1/licenses/nope"):
        r = api.get(path, role="auditor")
        assert r.status_code == 404 and r.json()["type"] == PROBLEMS + "not-found"


def test_chips_and_policy(api: Api) -> None:
    chips = api.get("/v1/chips", role="operator").json()
    h100 = next(c for c in chips if c["model"] == "H100-SXM")
    assert h100["tpp"] == 15_832
    policy = api.get("/v1/policy", role="vendor").json()
    assert policy["name"] == "ai-diffusion-2025"
    lpp = next(q for q in policy["quotas"] if q["name"] == "lpp")
    assert lpp["cap"] == 26_900_000
    assert lpp["provenance"]["status"] == "likely"  # every number shows where it comes from
    assert policy["not_firm"]["quotas.lpp.cap"] == "likely"


def test_health_and_ready_need_no_key(api: Api) -> None:
    assert api.get("/health", role=None).json() == {"status": "ok"}
    assert api.get("/ready", role=None).status_code == 200
    assert api.get("/schema/openapi.json", role=None).status_code == 200
