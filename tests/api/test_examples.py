"""Worked cases 1-8 of docs/rules/ai-diffusion-2025.md through HTTP.

With the exact numbers, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from tests.api.conftest import (
    H100,
    Api,
    bucket,
    line,
    seed_consignee,
    seed_license,
    seed_operator,
)


def violations(response: object, problem: str = "quota-exceeded") -> list[dict[str, object]]:
    """The violations of a 409, without their sentences (`rule` and `reason` are checked
    to be there; tests/api/test_denials.py checks what they say)."""
    body = response.json()  # type: ignore[attr-defined]
    assert response.status_code == 409, body  # type: ignore[attr-defined]
    assert body["type"] == f"https://tpp-ledger.dev/problems/{problem}"
    out = []
    for v in body["violations"]:
        assert v.pop("rule") and v.pop("reason"), v
        out.append(v)
    return out


def test_1_lpp_edge(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "sg-lab", "SG")
    r = api.reserve([line("SG", "sg-lab", quantity=1699)], key="k1")
    assert r.status_code == 201, r.text
    assert r.json()["lines"][0]["path"] == "lpp"
    assert r.json()["lines"][0]["tpp"] == 26_898_568
    head = api.get("/v1/headroom?country=SG&consignee_id=sg-lab", role="vendor").json()
    assert bucket(head, "lpp") == {"kind": "lpp", "key": "consignee:sg-lab", "cap": 26_900_000,
                                   "committed": 0, "held": 26_898_568, "available": 1_432}
    denied = violations(api.reserve([line("SG", "sg-lab")], key="k2"))
    assert {"line": 0, "constraint": "lpp", "key": "consignee:sg-lab", "cap": 26_900_000,
            "used": 26_898_568, "requested": H100} in denied
    seed_license(api, "sg-lic", "SG", 10**9, consignee_id="sg-lab")
    r = api.reserve([line("SG", "sg-lab", license_id="sg-lic")], key="k3")
    assert r.status_code == 201, r.text
    assert r.json()["lines"][0]["path"] == "license"
    head = api.get("/v1/headroom?country=SG&consignee_id=sg-lab", role="vendor").json()
    allocation = bucket(head, "country_allocation", "SG")
    assert allocation["committed"] + allocation["held"] == H100
    assert allocation["available"] == allocation["cap"] - H100


def test_2_group_aggregation(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "a1", "TH", group_id="g")
    seed_consignee(api, "a2", "TH", group_id="g")
    assert api.reserve([line("TH", "a1", quantity=900)], key="k1").json()["lines"][0]["path"] \
        == "lpp"
    denied = violations(api.reserve([line("TH", "a2", quantity=800)], key="k2"))
    lpp = [v for v in denied if v["constraint"] == "lpp"]
    assert lpp == [{"line": 0, "constraint": "lpp", "key": "group:g", "cap": 26_900_000,
                    "used": 900 * H100, "requested": 800 * H100}]
    assert 1_700 * H100 == 26_914_400
    r = api.reserve([line("TH", "a2", quantity=799)], key="k3")
    assert r.status_code == 201 and r.json()["lines"][0]["path"] == "lpp"


def test_3_country_allocation_edge(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "my-dc", "MY")
    seed_license(api, "my-lic", "MY", 10**9)
    # Use up the consignee's LPP first, so every later TPP needs the licence path.
    assert api.reserve([line("MY", "my-dc", tpp=26_900_000)], key="lpp").status_code == 201
    r = api.reserve([line("MY", "my-dc", tpp=790_000_000, license_id="my-lic")], key="k1")
    assert r.status_code == 201 and r.json()["lines"][0]["path"] == "license"
    denied = violations(api.reserve([line("MY", "my-dc", tpp=1, license_id="my-lic")], key="k2"))
    assert {"line": 0, "constraint": "country_allocation", "key": "MY", "cap": 790_000_000,
            "used": 790_000_000, "requested": 1} in denied
    head = api.get("/v1/headroom?country=MY", role="vendor").json()
    assert bucket(head, "country_allocation")["available"] == 0


def test_4_and_5_uveu_ratios(api: Api) -> None:
    seed_operator(api, "uv", hq="US", veu={"type": "UVEU"}, footprint={"US": 10**9})
    seed_consignee(api, "uv-ae", "AE", operator_id="uv")
    seed_consignee(api, "uv-de", "DE", operator_id="uv")
    denied = violations(api.reserve([line("AE", "uv-ae", "uv", tpp=75_268_818)], key="k1"))
    assert {v["constraint"] for v in denied} == {"uveu"}
    r = api.reserve([line("AE", "uv-ae", "uv", tpp=75_268_817)], key="k2")
    assert r.status_code == 201 and r.json()["lines"][0]["path"] == "uveu"
    y = 2 * 10**9 - 1_075_268_817
    assert y == 924_731_183
    evaluated = api.post("/v1/evaluate", {"lines": [line("DE", "uv-de", "uv", tpp=y + 1)]},
                         role="vendor").json()
    assert evaluated["allowed"] is False
    assert {v["constraint"] for v in evaluated["violations"]} == {"uveu"}
    violations(api.reserve([line("DE", "uv-de", "uv", tpp=y + 1)], key="k3"))
    r = api.reserve([line("DE", "uv-de", "uv", tpp=y)], key="k4")
    assert r.status_code == 201 and r.json()["lines"][0]["path"] == "tier1"


def test_6_two_phases(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "sg-lab", "SG")
    r = api.reserve([line("SG", "sg-lab", quantity=10)], key="k1", hold_seconds=60)
    rid = r.json()["id"]
    head = api.get("/v1/headroom?country=SG&consignee_id=sg-lab", role="vendor").json()
    assert bucket(head, "lpp")["held"] == 10 * H100
    api.clock.advance(60)
    head = api.get("/v1/headroom?country=SG&consignee_id=sg-lab", role="vendor").json()
    assert bucket(head, "lpp")["held"] == 0
    assert bucket(head, "lpp")["available"] == 26_900_000
    c = api.post(f"/v1/reservations/{rid}/commit", role="vendor")
    assert c.status_code == 409
    assert c.json()["type"] == "https://tpp-ledger.dev/problems/expired"
    assert api.get(f"/v1/reservations/{rid}", role="vendor").json()["status"] == "expired"


def test_7_atomic_lines(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "sg-lab", "SG")
    seed_consignee(api, "cn-dc", "CN")
    denied = violations(api.reserve([line("SG", "sg-lab"), line("CN", "cn-dc")], key="k1"),
                        "not-permitted")
    assert [v["line"] for v in denied] == [1]
    head = api.get("/v1/headroom?country=SG&consignee_id=sg-lab", role="vendor").json()
    assert bucket(head, "lpp")["held"] == 0
    assert api.get("/v1/entries", role="auditor").json()["items"] == []


def test_8_tier3(api: Api) -> None:
    seed_operator(api)
    for i, country in enumerate(["CN", "MO", "RU", "IR", "KP"]):
        seed_consignee(api, f"t3-{country}", country)
        denied = violations(api.reserve([line(country, f"t3-{country}")], key=f"k{i}"),
                            "not-permitted")
        assert [v["constraint"] for v in denied] == ["tier3"]
    seed_operator(api, "cn-op", hq="CN")
    seed_consignee(api, "my-dc", "MY", operator_id="cn-op")
    denied = violations(api.reserve([line("MY", "my-dc", "cn-op")], key="k-cn"), "not-permitted")
    assert [v["constraint"] for v in denied] == ["tier3"]
