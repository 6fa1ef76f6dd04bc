"""Parties' headquarters, ultimate parents and identity (API version 1.1) through HTTP:
round trips, version 1 defaults, validation (422 naming the field, nothing written),
the UVEU headquarters check (AID-4), lists, rows from before migration 0006, and the
policy deciding on headquarters and ultimate parents (AID-3, PRS-4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from ledger.store.engine import create_ledger_engine
from ledger.store.migrate import alembic_config, upgrade
from tests.api.conftest import Api, line, seed_consignee, seed_operator

PROBLEMS = "https://tpp-ledger.dev/problems/"

OPERATOR = {
    "name": "Gulf Compute", "hq_country": "AE", "veu": None,
    "parent_country": "US",
    "address": "  Level 12, Al Maryah Tower, Abu Dhabi  ",
    "officers": [" Jane Roe ", "John Doe"],
    "owners": [{"name": "Parent Holdings Inc.", "percent": 60},
               {"name": " Sovereign Fund ", "percent": 40}],
}
CONSIGNEE = {
    "name": "Lion City Lab", "country": "SG", "operator_id": "op1", "group_id": None,
    "hq_country": "HK", "parent_country": "CN",
    "address": "1 Fusionopolis Way, Singapore 138632",
    "officers": ["Li Wei"],
    "owners": [{"name": "Mainland AI Co., Ltd.", "percent": 100}],
}
# As stored and shown: exactly what was sent, trimmed.
OPERATOR_IDENTITY = {
    "parent_country": "US",
    "address": "Level 12, Al Maryah Tower, Abu Dhabi",
    "officers": ["Jane Roe", "John Doe"],
    "owners": [{"name": "Parent Holdings Inc.", "percent": 60},
               {"name": "Sovereign Fund", "percent": 40}],
}
CONSIGNEE_IDENTITY = {
    "hq_country": "HK", "parent_country": "CN",
    "address": "1 Fusionopolis Way, Singapore 138632",
    "officers": ["Li Wei"],
    "owners": [{"name": "Mainland AI Co., Ltd.", "percent": 100}],
}
V1_OPERATOR_DEFAULTS: dict[str, Any] = {
    "parent_country": None, "address": None, "officers": [], "owners": []}
V1_CONSIGNEE_DEFAULTS = {"hq_country": None, **V1_OPERATOR_DEFAULTS}


def _subset(doc: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    return {k: doc.get(k, "<absent>") for k in wanted}


def test_every_field_round_trips_trimmed(api: Api) -> None:
    put = api.put("/v1/operators/op1", OPERATOR)
    assert put.status_code == 200, put.text
    assert _subset(put.json(), OPERATOR_IDENTITY) == OPERATOR_IDENTITY
    for role in ("admin", "auditor", "vendor", "operator"):  # the operator key: its own
        got = api.get("/v1/operators/op1", role=role)
        assert got.status_code == 200, got.text
        assert got.json() == put.json()

    put = api.put("/v1/consignees/sg-lab", CONSIGNEE)
    assert put.status_code == 200, put.text
    assert _subset(put.json(), CONSIGNEE_IDENTITY) == CONSIGNEE_IDENTITY
    for role in ("admin", "auditor", "operator"):
        assert api.get("/v1/consignees/sg-lab", role=role).json() == put.json()


def test_version_1_bodies_get_defaults_and_a_put_replaces_identity(api: Api) -> None:
    seed_operator(api, "op1", hq="US")
    seed_consignee(api, "c1", "DE")
    assert _subset(api.get("/v1/operators/op1").json(),
                   V1_OPERATOR_DEFAULTS) == V1_OPERATOR_DEFAULTS
    assert _subset(api.get("/v1/consignees/c1").json(),
                   V1_CONSIGNEE_DEFAULTS) == V1_CONSIGNEE_DEFAULTS

    assert api.put("/v1/operators/op1", OPERATOR).status_code == 200
    assert api.put("/v1/consignees/c1", {**CONSIGNEE, "country": "DE"}).status_code == 200
    # PUT is create-or-replace: a version 1 body clears what it does not name
    seed_operator(api, "op1", hq="AE")
    seed_consignee(api, "c1", "DE")
    assert _subset(api.get("/v1/operators/op1").json(),
                   V1_OPERATOR_DEFAULTS) == V1_OPERATOR_DEFAULTS
    assert _subset(api.get("/v1/consignees/c1").json(),
                   V1_CONSIGNEE_DEFAULTS) == V1_CONSIGNEE_DEFAULTS
    # null lists mean none, like an absent field
    nulls = {"name": "n", "country": "DE", "operator_id": "op1", "hq_country": None,
             "parent_country": None, "address": None, "officers": None, "owners": None}
    r = api.put("/v1/consignees/c1", nulls)
    assert r.status_code == 200, r.text
    assert _subset(r.json(), V1_CONSIGNEE_DEFAULTS) == V1_CONSIGNEE_DEFAULTS


def test_lists_include_the_new_fields(api: Api) -> None:
    assert api.put("/v1/operators/op1", OPERATOR).status_code == 200
    seed_operator(api, "op2", hq="US")
    assert api.put("/v1/consignees/sg-lab", CONSIGNEE).status_code == 200
    seed_consignee(api, "plain", "DE")

    ops = {o["id"]: o for o in api.get("/v1/operators", role="auditor").json()["items"]}
    assert _subset(ops["op1"], OPERATOR_IDENTITY) == OPERATOR_IDENTITY
    assert _subset(ops["op2"], V1_OPERATOR_DEFAULTS) == V1_OPERATOR_DEFAULTS
    cons = {c["id"]: c for c in api.get("/v1/consignees", role="auditor").json()["items"]}
    assert _subset(cons["sg-lab"], CONSIGNEE_IDENTITY) == CONSIGNEE_IDENTITY
    assert _subset(cons["plain"], V1_CONSIGNEE_DEFAULTS) == V1_CONSIGNEE_DEFAULTS
    own = api.get("/v1/consignees", role="operator").json()["items"]  # op1's key
    assert {c["id"] for c in own} == {"sg-lab", "plain"}
    assert [o["officers"] for o in api.get("/v1/operators", role="operator").json()["items"]] \
        == [OPERATOR_IDENTITY["officers"]]


def _owners(*percents: Any) -> list[dict[str, Any]]:
    return [{"name": f"Owner {i}", "percent": p} for i, p in enumerate(percents)]


BAD_IDENTITY: list[tuple[dict[str, Any], str]] = [
    ({"parent_country": "ZZ"}, "parent_country"),
    ({"parent_country": "cn"}, "parent_country"),
    ({"parent_country": 1}, "parent_country"),
    ({"address": ""}, "address"),
    ({"address": "   "}, "address"),
    ({"address": "x" * 501}, "address"),
    ({"address": "line one\nline two"}, "address"),
    ({"address": "a\u0000b"}, "address"),
    ({"address": ["a"]}, "address"),
    ({"officers": "Jane Roe"}, "officers"),
    ({"officers": [""]}, "officers[0]"),
    ({"officers": ["Jane", "  "]}, "officers[1]"),
    ({"officers": ["Jane", 7]}, "officers[1]"),
    ({"officers": ["x" * 201]}, "officers[0]"),
    ({"officers": ["Jane\u0000"]}, "officers[0]"),
    ({"officers": [f"Officer {i}" for i in range(51)]}, "officers"),
    ({"owners": {"name": "A", "percent": 5}}, "owners"),
    ({"owners": [{"name": "A", "percent": 50.0}]}, "owners[0].percent"),
    ({"owners": [{"name": "A", "percent": 50.5}]}, "owners[0].percent"),
    ({"owners": [{"name": "A", "percent": True}]}, "owners[0].percent"),
    ({"owners": [{"name": "A", "percent": "50"}]}, "owners[0].percent"),
    ({"owners": [{"name": "A", "percent": 0}]}, "owners[0].percent"),
    ({"owners": [{"name": "A", "percent": -5}]}, "owners[0].percent"),
    ({"owners": [{"name": "A", "percent": 101}]}, "owners[0].percent"),
    ({"owners": [{"name": "A"}]}, "owners[0].percent"),
    ({"owners": [{"name": "", "percent": 5}]}, "owners[0].name"),
    ({"owners": [{"name": "  ", "percent": 5}]}, "owners[0].name"),
    ({"owners": [{"percent": 5}]}, "owners[0].name"),
    ({"owners": [{"name": "A", "percent": 5, "country": "CN"}]}, "owners[0]"),
    ({"owners": _owners(60, 41)}, "owners"),
    ({"owners": _owners(*[1] * 51)}, "owners"),
]


@pytest.mark.parametrize(("extra", "field"), [
    *BAD_IDENTITY,
    ({"hq_country": "XX"}, "hq_country"),
    ({"hq_country": "sg"}, "hq_country"),
])
def test_consignee_identity_422_names_the_field_and_writes_nothing(
    api: Api, extra: dict[str, Any], field: str
) -> None:
    seed_operator(api, "op1")
    before = api.put("/v1/consignees/c1", CONSIGNEE).json()
    for ident in ("c1", "c-new"):  # a replacement and a creation
        r = api.put(f"/v1/consignees/{ident}", {**CONSIGNEE, **extra})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == PROBLEMS + "invalid-input"
        assert r.json()["field"] == field, r.json()
    assert api.get("/v1/consignees/c1").json() == before
    assert api.get("/v1/consignees/c-new").status_code == 404


@pytest.mark.parametrize(("extra", "field"), BAD_IDENTITY)
def test_operator_identity_422_names_the_field_and_writes_nothing(
    api: Api, extra: dict[str, Any], field: str
) -> None:
    before = api.put("/v1/operators/op1", OPERATOR).json()
    for ident in ("op1", "op-new"):
        r = api.put(f"/v1/operators/{ident}", {**OPERATOR, **extra})
        assert r.status_code == 422, r.text
        assert r.json()["type"] == PROBLEMS + "invalid-input"
        assert r.json()["field"] == field, r.json()
    assert api.get("/v1/operators/op1").json() == before
    assert api.get("/v1/operators/op-new").status_code == 404


def test_bounds_are_inclusive(api: Api) -> None:
    body = {**OPERATOR, "address": "x" * 500, "officers": [f"O{i}" + "x" * 190 for i in range(50)],
            "owners": _owners(*[2] * 50)}
    r = api.put("/v1/operators/op1", body)
    assert r.status_code == 200, r.text
    assert len(r.json()["officers"]) == 50 and sum(o["percent"] for o in r.json()["owners"]) == 100


# -- AID-4: a UVEU must be headquartered in Tier 1 (REGULATION worked case 9) ----------


def test_uveu_headquartered_outside_tier_1_is_422(api: Api) -> None:
    uveu = {"name": "U", "veu": {"type": "UVEU"}}
    r = api.put("/v1/operators/u-in", {**uveu, "hq_country": "IN"})
    assert r.status_code == 422, r.text
    assert r.json()["type"] == PROBLEMS + "invalid-input"
    assert r.json()["field"] == "hq_country"
    assert "IN" in r.json()["detail"]
    assert api.get("/v1/operators/u-in").status_code == 404

    # its ultimate parent counts too, and the field says which is at fault
    r = api.put("/v1/operators/u-us", {**uveu, "hq_country": "US", "parent_country": "CN"})
    assert r.status_code == 422 and r.json()["field"] == "parent_country", r.text
    assert api.get("/v1/operators/u-us").status_code == 404

    # an existing operator is not turned into an ineligible UVEU
    seed_operator(api, "op-in", hq="IN")
    before = api.get("/v1/operators/op-in").json()
    assert api.put("/v1/operators/op-in", {**uveu, "hq_country": "IN"}).status_code == 422
    assert api.get("/v1/operators/op-in").json() == before

    # Tier 1 headquarters and parent: fine; an NVEU in India: fine
    ok = api.put("/v1/operators/u-ok", {**uveu, "hq_country": "US", "parent_country": "JP"})
    assert ok.status_code == 200, ok.text
    nveu = {"name": "N", "hq_country": "IN", "veu": {"type": "NVEU", "country": "IN"}}
    assert api.put("/v1/operators/n-in", nveu).status_code == 200


def test_uveu_check_follows_the_rule_set_in_force(
    sqlite_url: str, start_api: Callable[..., Api]
) -> None:
    api = start_api(sqlite_url, rule_set="post-rescission-2025")  # no UVEU there (PRS-1)
    r = api.put("/v1/operators/u-in", {"name": "U", "hq_country": "IN", "veu": {"type": "UVEU"}})
    assert r.status_code == 200, r.text


# -- the policy decides on headquarters and ultimate parents --------------------------


def _denial(api: Api, lines: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    r = api.reserve(lines, key=key)
    assert r.status_code == 409, r.text
    violations: list[dict[str, Any]] = r.json()["violations"]
    return violations


def test_consignee_whose_ultimate_parent_is_in_tier_3_is_denied(api: Api) -> None:
    """REGULATION worked case 7 (ai-diffusion-2025, AID-3)."""
    seed_operator(api, "op1", hq="US")
    r = api.put("/v1/consignees/sg-lab", {"name": "SG lab", "country": "SG",
                                          "operator_id": "op1", "parent_country": "CN"})
    assert r.status_code == 200, r.text
    seed_consignee(api, "sg-free", "SG")
    [v] = _denial(api, [line("SG", "sg-lab", quantity=10)], "case7")
    assert v["constraint"] == "tier3" and "parent" in v["reason"], v
    assert api.reserve([line("SG", "sg-free", quantity=10)], key="free").status_code == 201


def test_consignee_headquartered_in_tier_3_is_denied(api: Api) -> None:
    seed_operator(api, "op1", hq="US")
    r = api.put("/v1/consignees/sg-lab", {"name": "SG lab", "country": "SG",
                                          "operator_id": "op1", "hq_country": "CN"})
    assert r.status_code == 200, r.text
    [v] = _denial(api, [line("SG", "sg-lab", quantity=10)], "hq")
    assert v["constraint"] == "tier3" and "headquarters" in v["reason"], v


def test_operator_whose_ultimate_parent_is_in_tier_3_is_denied(api: Api) -> None:
    r = api.put("/v1/operators/op1", {"name": "x", "hq_country": "US", "parent_country": "CN"})
    assert r.status_code == 200, r.text
    seed_consignee(api, "de-dc", "DE")
    [v] = _denial(api, [line("DE", "de-dc", quantity=10)], "op-parent")
    assert v["constraint"] == "tier3", v


def test_post_rescission_parent_in_d5_needs_a_licence(
    sqlite_url: str, start_api: Callable[..., Api]
) -> None:
    """REGULATION worked case 3 (post-rescission-2025, PRS-4)."""
    api = start_api(sqlite_url, rule_set="post-rescission-2025")
    seed_operator(api, "op1", hq="US")
    r = api.put("/v1/consignees/sg-lab", {"name": "SG lab", "country": "SG",
                                          "operator_id": "op1", "parent_country": "CN"})
    assert r.status_code == 200, r.text
    [v] = _denial(api, [line("SG", "sg-lab", quantity=10)], "case3")
    assert v["constraint"] in ("license_required", "tier3"), v


# -- rows written before revision 0006 -------------------------------------------------


def test_rows_from_before_0006_read_version_1_defaults(
    db_url: str, start_api: Callable[..., Api]
) -> None:
    engine = create_ledger_engine(db_url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config(db_url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        at = datetime(2025, 6, 1, tzinfo=UTC).replace(tzinfo=None)
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO operator (id, name, hq_country, footprint, updated_at) "
                "VALUES ('op1', 'Old', 'US', '{}', :at)"), {"at": at})
            conn.execute(sa.text(
                "INSERT INTO consignee (id, name, country, operator_id, updated_at) "
                "VALUES ('c1', 'Old', 'DE', 'op1', :at)"), {"at": at})
        upgrade(engine)
    finally:
        engine.dispose()
    api = start_api(db_url)
    assert _subset(api.get("/v1/operators/op1").json(),
                   V1_OPERATOR_DEFAULTS) == V1_OPERATOR_DEFAULTS
    assert _subset(api.get("/v1/consignees/c1").json(),
                   V1_CONSIGNEE_DEFAULTS) == V1_CONSIGNEE_DEFAULTS
    assert api.reserve([line("DE", "c1", quantity=1)], key="old").status_code == 201
