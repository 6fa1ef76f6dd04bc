"""History through HTTP: cursor pages, filters, balances as of a time, chain verification."""

from __future__ import annotations

import itertools

import pytest

from tests.api.conftest import H100, Api, line, seed_consignee, seed_operator


def walk(api: Api, query: str, limit: int) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        q = f"{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/v1/entries?{q}", role="auditor").json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_pagination_walks_thousands_without_gaps_or_duplicates(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "de-1", "DE")
    seed_consignee(api, "fr-1", "FR")
    for i in range(3):  # 3 x 800 lines = 2,400 hold entries, then 800 commit entries
        lines = [line("DE" if j % 2 else "FR", "de-1" if j % 2 else "fr-1", tpp=j + 1)
                 for j in range(800)]
        r = api.reserve(lines, key=f"bulk{i}")
        assert r.status_code == 201, r.text
        if i == 0:
            assert api.post(f"/v1/reservations/{r.json()['id']}/commit",
                            role="vendor").status_code == 200
    everything = walk(api, "x=1", limit=137)
    seqs = [e["seq"] for e in everything]
    assert seqs == list(range(1, 3_201))
    de = walk(api, "country=DE", limit=500)
    assert len(de) == 1_600 and len({e["seq"] for e in de}) == 1_600
    assert all(e["country"] == "DE" for e in de)
    commits = walk(api, "kind=commit", limit=1000)
    assert len(commits) == 800
    first = everything[0]
    assert set(first) >= {"seq", "kind", "reservation_id", "tpp", "at", "hash", "prev_hash"}
    for prev, cur in itertools.pairwise(everything):
        assert cur["prev_hash"] == prev["hash"]


def test_entry_filters_and_bad_input(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "sg-1", "SG")
    api.reserve([line("SG", "sg-1")], key="a")
    api.clock.advance(3600)
    api.reserve([line("SG", "sg-1")], key="b")
    later = api.get("/v1/entries?since=2025-06-02T12:30:00Z", role="auditor").json()["items"]
    assert [e["at"] for e in later] == ["2025-06-02T13:00:00Z"]
    earlier = api.get("/v1/entries?until=2025-06-02T12:30:00Z", role="auditor").json()["items"]
    assert len(earlier) == 1
    assert len(api.get("/v1/entries?consignee_id=sg-1", role="auditor").json()["items"]) == 2
    for bad, field in [("cursor=%%%", "cursor"), ("kind=bogus", "kind"), ("limit=0", "limit"),
                       ("limit=5000", "limit"), ("country=zz", "country"),
                       ("since=yesterday", "since")]:
        r = api.get(f"/v1/entries?{bad}", role="auditor")
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["field"] == field, r.json()


@pytest.mark.parametrize("outcome", ["commit", "expire"])
def test_balances_as_of(api: Api, outcome: str) -> None:
    seed_operator(api)
    seed_consignee(api, "sg-1", "SG")
    before = "2025-06-02T11:59:59Z"
    api.clock.advance(10)  # the hold is at 12:00:10, for 60 s
    rid = api.reserve([line("SG", "sg-1", quantity=3)], key="a", hold_seconds=60).json()["id"]
    if outcome == "commit":
        api.clock.advance(30)
        assert api.post(f"/v1/reservations/{rid}/commit", role="vendor").status_code == 200
    else:
        api.clock.advance(3600)

    def lpp(as_of: str) -> dict:
        body = api.get(f"/v1/balances?as_of={as_of}&country=SG", role="auditor").json()
        found = [b for b in body["buckets"] if b["kind"] == "lpp"]
        return found[0] if found else {}

    assert lpp(before) == {}
    held = lpp("2025-06-02T12:00:20Z")
    assert (held["committed"], held["held"]) == (0, 3 * H100)
    assert held["cap"] == 26_900_000 and held["available"] == 26_900_000 - 3 * H100
    after = lpp("2025-06-02T12:05:00Z")
    if outcome == "commit":
        assert (after["committed"], after["held"]) == (3 * H100, 0)
    else:  # no expire entry was written: the hold lapsed at 12:01:10 all the same
        assert (after["committed"], after["held"], after["available"]) == (0, 0, 26_900_000)
    now = api.get("/v1/balances?country=SG", role="operator").json()
    assert now["as_of"].startswith("2025-06-02T1")


def test_audit_verify(api: Api) -> None:
    empty = api.get("/v1/audit/verify", role="auditor").json()
    assert empty["ok"] is True and empty["entries"] == 0 and empty["first_bad_seq"] is None
    seed_operator(api)
    seed_consignee(api, "sg-1", "SG")
    api.reserve([line("SG", "sg-1"), line("SG", "sg-1")], key="a")
    report = api.get("/v1/audit/verify", role="auditor").json()
    assert report["ok"] is True and report["entries"] == 2
    entries = api.get("/v1/entries", role="auditor").json()["items"]
    assert report["head"] == entries[-1]["hash"]


def test_balances_as_of_count_a_group_member_that_left_later(api: Api) -> None:
    """A group's past LPP use includes members who have left since (review finding)."""
    seed_operator(api, "op1", hq="TH")
    seed_consignee(api, "a1", "TH", group_id="g")
    seed_consignee(api, "a2", "TH", group_id="g")
    for key, who, n in (("k1", "a2", 1000), ("k2", "a1", 10)):
        rid = api.reserve([line("TH", who, quantity=n)], key=key).json()["id"]
        assert api.post(f"/v1/reservations/{rid}/commit", role="vendor").status_code == 200
    during = api.clock.now().isoformat().replace("+00:00", "Z")
    api.clock.set(api.clock.now().replace(year=api.clock.now().year + 1, month=1, day=1))
    seed_consignee(api, "a2", "TH", group_id=None)  # leaves the group the next year
    body = api.get(f"/v1/balances?as_of={during}&consignee_id=a1", role="auditor").json()
    group = [b for b in body["buckets"] if b["key"] == "group:g"]
    assert len(group) == 1 and group[0]["committed"] == 1010 * H100, body
