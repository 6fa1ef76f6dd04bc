"""Restricted-party screening through HTTP (API version 1.1): list imports (text/csv,
idempotent, a malformed row is a 422 naming it), matches by role, clearances (201,
shown in GET /v1/entries), a reservation line denied with constraint `screening`;
and the CLI's `ledger screening import`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledger.cli import main
from ledger.settings import get_settings
from tests.api.conftest import Api, line, seed_operator

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "screening-sample.csv"
PROBLEMS = "https://tpp-ledger.dev/problems/"
CSV = {"Content-Type": "text/csv"}


def post_list(api: Api, content: bytes, role: str = "admin") -> Any:
    return api.call("POST", "/v1/screening/lists", role, content=content, headers=CSV)


def test_import_match_deny_clear_through_http(api: Api) -> None:
    seed_operator(api)
    r = post_list(api, SAMPLE.read_bytes())
    assert r.status_code == 200, r.text
    assert r.json()["changed"] is True and r.json()["entries"] == 20
    again = post_list(api, SAMPLE.read_bytes())
    assert again.json()["changed"] is False
    assert again.json()["version_id"] == r.json()["version_id"]
    assert post_list(api, SAMPLE.read_bytes(), role="vendor").status_code == 403

    r = api.put("/v1/consignees/nw", {
        "name": "Northwind Server Works", "country": "DE", "operator_id": "op1",
        "address": "No 8 Fictive Road, Building 3, Harbor High-Tech Park, Lumen City, XX",
        "officers": ["Lo Fictus"]})
    assert r.status_code == 200, r.text
    api.put("/v1/consignees/ok", {"name": "Plain Compute", "country": "DE",
                                  "operator_id": "op1"})
    for role in ("admin", "auditor"):
        m = api.get("/v1/screening/matches?party_id=nw", role)
        assert m.status_code == 200, m.text
        assert m.json()["items"] == [{
            "party_id": "nw", "party_kind": "consignee", "entry_id": "FX-0001",
            "list": "Entity List (EL) - Bureau of Industry and Security",
            "matched_on": "address_and_officer", "score": 100.0, "state": "blocking",
            "via": None}]
    assert api.get("/v1/screening/matches", "vendor").status_code == 403

    denied = api.reserve([line("DE", "ok"), line("DE", "nw")], key="k1")
    assert denied.status_code == 409, denied.text
    body = denied.json()
    assert body["type"] == PROBLEMS + "not-permitted"
    assert [(v["line"], v["constraint"], v["key"], v["rule"]) for v in body["violations"]] \
        == [(1, "screening", "FX-0001", "screening")]

    bad = api.post("/v1/screening/clearances", {"party_id": "nw", "entry_id": "FX-0001"})
    assert bad.status_code == 422
    missing = api.post("/v1/screening/clearances",
                       {"party_id": "nw", "entry_id": "FX-0009", "reason": "x"})
    assert missing.status_code == 404
    assert api.post("/v1/screening/clearances",
                    {"party_id": "nw", "entry_id": "FX-0001", "reason": "x"},
                    role="auditor").status_code == 403
    c = api.post("/v1/screening/clearances",
                 {"party_id": "nw", "entry_id": "FX-0001", "reason": "another firm"})
    assert c.status_code == 201, c.text
    assert c.json()["entry_id"] == "FX-0001"
    assert api.get("/v1/screening/matches?party_id=nw").json()["items"][0]["state"] \
        == "cleared"
    entries = api.get("/v1/entries?kind=clearance", "auditor").json()["items"]
    assert [(e["kind"], e["consignee_id"], e["tpp"], e["seq"]) for e in entries] == [
        ("clearance", "nw", 0, c.json()["seq"])]
    assert api.reserve([line("DE", "ok"), line("DE", "nw")], key="k2").status_code == 201
    assert api.get("/v1/audit/verify", "auditor").json()["ok"] is True


def test_a_malformed_row_is_a_422_naming_it(api: Api) -> None:
    rows = SAMPLE.read_bytes().split(b"\n")
    rows[4] = rows[4].replace(b"2022-02-02", b"02/02/2022")
    r = post_list(api, b"\n".join(rows))
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "row 4"
    assert r.json()["detail"].startswith("row 4: start_date '02/02/2022' is not a date")
    assert api.get("/v1/screening/lists/in-force").status_code == 404
    json_body = api.call("POST", "/v1/screening/lists", "admin", content=b"{}",
                         headers={"Content-Type": "application/json"})
    assert json_body.status_code == 422


def test_cli_import_prints_one_line_and_names_a_bad_row(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    try:
        bad = tmp_path / "bad.csv"
        rows = SAMPLE.read_bytes().split(b"\n")
        rows[2] = rows[2].replace(b"FX-0002", b"FX-0001")
        bad.write_bytes(b"\n".join(rows))
        assert main(["screening", "import", str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: {bad}: row 2: entry 'FX-0001' repeats row 1; nothing imported"]
        assert main(["screening", "import", str(SAMPLE)]) == 0
        assert "imported version 1: 20 entries" in capsys.readouterr().out
        assert main(["screening", "import", str(SAMPLE)]) == 0
        assert capsys.readouterr().out.startswith("unchanged:")
        assert main(["screening", "versions"]) == 0
        assert "20 entries" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
