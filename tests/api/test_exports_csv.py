"""/v1/entries.csv and /v1/balances.csv: the JSON forms' rows, roles and scopes, streamed
page by page; `ledger export --format csv`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

import api.routes.exports as exports
from ledger.csv_export import BALANCE_COLUMNS, ENTRY_COLUMNS
from ledger.queries import LedgerReader
from ledger.settings import get_settings
from tests.api.conftest import Api, line, seed_consignee, seed_operator


def rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def all_entries(api: Api, role: str = "auditor", **query: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = dict(query, limit="3", **({"cursor": cursor} if cursor else {}))
        r = api.get("/v1/entries", role, params=params)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


@pytest.fixture
def loaded(sqlite_url: str, start_api: Callable[..., Api]) -> Api:
    api = start_api(sqlite_url)
    seed_operator(api, "op1", hq="AE")
    seed_operator(api, "op2", hq="AE")
    seed_consignee(api, "c1", "AE", "op1")
    seed_consignee(api, "c2", "AE", "op2")
    for n in range(4):
        r = api.reserve([line("AE", "c1", quantity=10 + n)], key=f"a{n}")
        assert r.status_code == 201
        if n % 2:
            api.post(f"/v1/reservations/{r.json()['id']}/commit", role="vendor")
    r = api.reserve([line("AE", "c2", "op2", quantity=7)], key="b0")
    assert r.status_code == 201
    api.post(f"/v1/reservations/{r.json()['id']}/release", role="vendor")
    api.sqlite_url = sqlite_url  # type: ignore[attr-defined]
    return api


def test_entries_csv_has_the_json_rows(loaded: Api) -> None:
    r = loaded.get("/v1/entries.csv", "auditor")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="entries.csv"' in r.headers["content-disposition"]
    assert r.text.splitlines()[0] == ",".join(ENTRY_COLUMNS)
    got = rows(r.text)
    want = all_entries(loaded)
    assert len(got) == len(want) == 8
    for row, item in zip(got, want, strict=True):
        assert list(row) == list(ENTRY_COLUMNS)
        for column in ENTRY_COLUMNS:
            if column in ("at", "recorded_at"):
                assert row[column][:19] == item[column][:19]
            else:
                assert row[column] == cell(item[column]), column
    # Filters are the JSON form's.
    for query in ({"kind": "hold"}, {"consignee_id": "c2"}, {"operator_id": "op1"},
                  {"country": "AE", "kind": "commit"}):
        csv_rows = rows(loaded.get("/v1/entries.csv", "auditor", params=query).text)
        assert [x["seq"] for x in csv_rows] == [str(e["seq"]) for e in
                                                all_entries(loaded, **query)], query


def test_roles_and_scopes_as_the_json_forms(loaded: Api) -> None:
    for path in ("/v1/entries.csv", "/v1/balances.csv"):
        assert loaded.get(path, None).status_code == 401
        assert loaded.get(path, "vendor").status_code == 403
        assert loaded.get(path, "operator", params={"operator_id": "op2"}).status_code == 403
        bad = loaded.get(path, "auditor", params={"consignee_id": "bad id!"})
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
    own = rows(loaded.get("/v1/entries.csv", "operator").text)
    assert own and {x["operator_id"] for x in own} == {"op1"}
    assert [x["seq"] for x in own] == [str(e["seq"]) for e in all_entries(loaded, "operator")]
    assert loaded.get("/v1/entries.csv", "auditor", params={"since": "yesterday"}
                      ).status_code == 422


def test_balances_csv_has_the_json_rows(loaded: Api) -> None:
    for role, query in (("auditor", {}), ("operator", {}), ("admin", {"consignee_id": "c2"})):
        as_of = loaded.get("/v1/balances", role, params=query).json()["as_of"]
        params = dict(query, as_of=as_of)
        want = loaded.get("/v1/balances", role, params=params).json()
        r = loaded.get("/v1/balances.csv", role, params=params)
        assert r.status_code == 200
        assert r.text.splitlines()[0] == ",".join(BALANCE_COLUMNS)
        got = rows(r.text)
        assert len(got) == len(want["buckets"]) > 0
        assert set(BALANCE_COLUMNS[1:]) == set(want["buckets"][0])  # every JSON field
        for row, bucket in zip(got, want["buckets"], strict=True):
            assert row["as_of"][:19] == want["as_of"][:19]
            assert {c: row[c] for c in BALANCE_COLUMNS[1:]} == {
                c: cell(bucket[c]) for c in BALANCE_COLUMNS[1:]}


def test_entries_stream_page_by_page(loaded: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = LedgerReader.entries

    def spy(self: LedgerReader, filt: Any, cursor: str | None, limit: int) -> Any:
        calls.append(limit)
        return real(self, filt, cursor, limit)

    monkeypatch.setattr(LedgerReader, "entries", spy)
    monkeypatch.setattr(exports, "EXPORT_PAGE", 3)
    with loaded.client.stream("GET", "/v1/entries.csv",
                              headers={"Authorization": f"Bearer {loaded.keys['auditor']}"}
                              ) as r:
        chunks = list(r.iter_text())
    body = "".join(chunks)
    assert calls == [3, 3, 3]  # 8 entries: pages of 3, 3 and 2; never one big query
    assert [x["seq"] for x in rows(body)] == [str(n) for n in range(1, 9)]


def test_cli_export_csv(loaded: Api, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    from ledger.cli import main

    monkeypatch.setenv("LEDGER_DATABASE_URL", loaded.sqlite_url)  # type: ignore[attr-defined]
    get_settings.cache_clear()
    try:
        out = tmp_path / "entries.csv"
        assert main(["export", "--format", "csv", "--out", str(out)]) == 0
        assert "8 entries" in capsys.readouterr().err
        text = out.read_bytes().decode("utf-8")
        assert text == loaded.get("/v1/entries.csv", "auditor").text
        assert main(["export", "--format", "csv", "--out", "-", "--since", "3",
                     "--consignee-id", "c1", "--kind", "hold"]) == 0
        got = rows(capsys.readouterr().out)
        want = [e for e in all_entries(loaded, consignee_id="c1", kind="hold") if e["seq"] >= 3]
        assert [x["seq"] for x in got] == [str(e["seq"]) for e in want] and got
    finally:
        get_settings.cache_clear()


def test_a_walk_stops_at_the_head_it_saw(loaded: Api) -> None:
    from ledger.csv_export import entry_pages
    from ledger.queries import EntryFilter

    reader = loaded.client.app.state.services.reader
    pages = entry_pages(reader, EntryFilter(), page_size=2)
    first = next(pages)  # the head (8) is read when the walk begins
    assert loaded.reserve([line("AE", "c1", quantity=1)], key="late").status_code == 201
    seqs = [e["seq"] for page in [first, *pages] for e in page]
    assert seqs == list(range(1, 9))  # seq 9, appended meanwhile, is not in this walk
    bounded = entry_pages(reader, EntryFilter(), upto_seq=5, page_size=2)
    assert [[e["seq"] for e in p] for p in bounded] == [[1, 2], [3, 4], [5]]
