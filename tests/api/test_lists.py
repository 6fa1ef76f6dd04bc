"""The list endpoints (issue 9, defect 8): cursor pages, filters, role scoping.

GET /v1/reservations (vendor: its own; admin, auditor: all; operator: 403) and
GET /v1/operators · /v1/consignees · /v1/licenses (every role; an operator key
its own records alone).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.api.conftest import Api, line, seed_consignee, seed_license, seed_operator

PROBLEMS = "https://tpp-ledger.dev/problems/"


def walk(api: Api, path: str, role: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of a list, following next_cursor; and how many pages it took."""
    items: list[dict[str, Any]] = []
    cursor, pages = None, 0
    sep = "&" if "?" in path else "?"
    while True:
        q = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = api.get(q, role=role)
        assert r.status_code == 200, (q, r.text)
        page = r.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= limit
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages
        assert page["items"], "a page with a next_cursor is never empty"


def _reservations(api: Api) -> dict[str, list[str]]:
    """Vendor: 7 reservations (two pairs made in one instant), vendor2: 3; ids by key."""
    seed_operator(api, "op1")
    seed_consignee(api, "sg-1", "SG")
    made: dict[str, list[str]] = {"vendor": [], "vendor2": []}
    for i in range(10):
        role = "vendor2" if i % 4 == 3 else "vendor"
        r = api.reserve([line("SG", "sg-1", quantity=i + 1)], key=f"k{i}", role=role)
        assert r.status_code == 201, r.text
        made[role].append(r.json()["id"])
        if i not in (1, 5):  # 1 and 2, 5 and 6 share created_at: the id breaks the tie
            api.clock.advance(60)
    return made


def _order(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(i["created_at"], i["id"]) for i in items]


def test_reservations_by_role_page_through_every_item_once(api: Api) -> None:
    made = _reservations(api)
    everyone = made["vendor"] + made["vendor2"]
    for role, expected in [("vendor", made["vendor"]), ("vendor2", made["vendor2"]),
                           ("admin", everyone), ("auditor", everyone)]:
        for limit in (1, 2, 3, 1000):
            items, pages = walk(api, "/v1/reservations", role, limit)
            ids = [i["id"] for i in items]
            assert sorted(ids) == sorted(expected), (role, limit)
            assert len(ids) == len(set(ids))
            assert _order(items) == sorted(_order(items)), "oldest first, then by id"
            assert pages == -(-len(expected) // limit), "no empty last page"
    # Items are exactly what the single GET answers, lines included.
    items, _ = walk(api, "/v1/reservations", "admin", 4)
    for item in items:
        assert item == api.get(f"/v1/reservations/{item['id']}", role="admin").json()
    assert items[0]["lines"][0]["consignee_id"] == "sg-1"
    assert api.get("/v1/reservations", role="operator").status_code == 403
    assert api.get("/v1/reservations", role=None).status_code == 401


def test_a_walk_sees_reservations_made_during_it_once(api: Api) -> None:
    _reservations(api)
    first = api.get("/v1/reservations?limit=4", role="admin").json()
    api.clock.advance(60)
    new = api.reserve([line("SG", "sg-1")], key="during").json()["id"]
    seen = first["items"]
    cursor = first["next_cursor"]
    while cursor:
        page = api.get(f"/v1/reservations?limit=4&cursor={cursor}", role="admin").json()
        seen += page["items"]
        cursor = page["next_cursor"]
    ids = [i["id"] for i in seen]
    assert len(ids) == 11 == len(set(ids)) and ids[-1] == new


def test_reservation_filters(api: Api) -> None:
    seed_operator(api, "op1")
    seed_consignee(api, "sg-1", "SG")

    def reserve(key: str, hold: int = 3600) -> str:
        r = api.reserve([line("SG", "sg-1")], key=key, hold_seconds=hold)
        assert r.status_code == 201, r.text
        rid: str = r.json()["id"]
        api.clock.advance(60)
        return rid

    committed, released = reserve("c"), reserve("r")
    lapsed = reserve("x", hold=30)  # past its time from now on: reads `expired`
    held = reserve("h")
    assert api.post(f"/v1/reservations/{committed}/commit", role="vendor").status_code == 200
    assert api.post(f"/v1/reservations/{released}/release", role="vendor").status_code == 200
    for status, rid in [("committed", committed), ("released", released),
                        ("expired", lapsed), ("held", held)]:
        for role in ("vendor", "admin", "auditor"):
            items, _ = walk(api, f"/v1/reservations?status={status}", role, 1)
            assert [i["id"] for i in items] == [rid], (status, role)
            assert items[0]["status"] == status
    assert walk(api, "/v1/reservations?status=held", "vendor2", 1)[0] == []
    # since / until bound created_at (inclusive), RFC 3339 with any offset.
    items, _ = walk(api, "/v1/reservations?since=2025-06-02T12:01:00Z", "admin", 1)
    assert [i["id"] for i in items] == [released, lapsed, held]
    items, _ = walk(api, "/v1/reservations?until=2025-06-02T14:01:00%2B02:00", "admin", 2)
    assert [i["id"] for i in items] == [committed, released]
    items, _ = walk(api, "/v1/reservations?since=2025-06-02T12:00:30Z"
                         "&until=2025-06-02T12:02:30Z&status=released", "admin", 5)
    assert [i["id"] for i in items] == [released]


def _cursor(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/v1/reservations", "/v1/operators", "/v1/consignees",
                                  "/v1/licenses"])
def test_bad_cursor_limit_or_filter_is_422(api: Api, path: str) -> None:
    seed_operator(api, "op1")
    seed_operator(api, "op2")
    other = "/v1/operators" if path != "/v1/operators" else "/v1/consignees"
    seed_consignee(api, "c1", "AE")
    seed_consignee(api, "c2", "AE")
    seed_license(api, "l1", "AE", 5, "c1")
    seed_license(api, "l2", "AE", 5, "c2")
    for _ in range(2):  # two reservations, so a page of one has a next_cursor
        api.reserve([line("AE", "c1")], key=f"r{_}")
    cursor_of_other_list = api.get(f"{other}?limit=1").json()["next_cursor"]
    assert cursor_of_other_list
    bad = [
        ("cursor=%25%25%25", "cursor"),
        (f"cursor={cursor_of_other_list}", "cursor"),
        (f"cursor={_cursor({'list': path[4:], 'after': 5})}", "cursor"),
        (f"cursor={_cursor({'list': path[4:], 'after': 'x' * 65})}", "cursor"),
        (f"cursor={_cursor([1, 2])}", "cursor"),
        ("cursor=" + "A" * 401, "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
    ]
    if path == "/v1/reservations":
        bad += [
            (f"cursor={_cursor({'list': 'reservations', 'after': 'res_x', 'at': 'noon'})}",
             "cursor"),
            (f"cursor={_cursor({'list': 'reservations', 'after': 'res_x'})}", "cursor"),
            (f"cursor={_cursor({'list': 'reservations', 'after': 'res_x', 'at': '2025-06-02T12:00:00'})}",  # noqa: E501
             "cursor"),
            ("status=bogus", "status"),
            ("status=HELD", "status"),
            ("since=yesterday", "since"),
            ("until=2025-13-01T00:00:00Z", "until"),
        ]
    for query, field in bad:
        r = api.get(f"{path}?{query}", role="admin")
        assert r.status_code == 422, (query, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == PROBLEMS + "invalid-input"
        assert r.json()["field"] == field, (query, r.json())
    assert api.get(f"{path}?limit=1000").status_code == 200


def _reference_world(api: Api) -> None:
    for op in ("op1", "op2", "op3"):
        seed_operator(api, op)
    for c_id, op in [("a-1", "op1"), ("a-2", "op2"), ("a-3", "op1"), ("a-4", None),
                     ("a-5", "op1"), ("a-6", "op2")]:
        seed_consignee(api, c_id, "AE", operator_id=op)
    for lic, c_id in [("l-1", "a-1"), ("l-2", "a-2"), ("l-3", None), ("l-4", "a-3"),
                      ("l-5", "a-4"), ("l-6", "a-5"), ("l-7", "a-1")]:
        seed_license(api, lic, "AE", 10, c_id)


def test_reference_lists_by_role(api: Api) -> None:
    _reference_world(api)
    everything = {
        "operators": ["op1", "op2", "op3"],
        "consignees": ["a-1", "a-2", "a-3", "a-4", "a-5", "a-6"],
        "licenses": ["l-1", "l-2", "l-3", "l-4", "l-5", "l-6", "l-7"],
    }
    own = {
        "operator": {"operators": ["op1"], "consignees": ["a-1", "a-3", "a-5"],
                     "licenses": ["l-1", "l-4", "l-6", "l-7"]},
        "operator2": {"operators": ["op2"], "consignees": ["a-2", "a-6"],
                      "licenses": ["l-2"]},
    }
    for kind, ids in everything.items():
        for role in ("admin", "vendor", "auditor", "operator", "operator2"):
            expected = own[role][kind] if role in own else ids
            for limit in (1, 2, 100):
                items, _ = walk(api, f"/v1/{kind}", role, limit)
                assert [i["id"] for i in items] == expected, (kind, role, limit)
        # Items are exactly what the single GETs answer.
        for item in walk(api, f"/v1/{kind}", "auditor", 4)[0]:
            assert item == api.get(f"/v1/{kind}/{item['id']}", role="auditor").json()


def test_an_operator_key_whose_operator_owns_nothing_lists_nothing(sqlite_api: Api) -> None:
    api = sqlite_api
    _reference_world(api)
    # The operator2 key's op2 is removed from every consignee: it owns none of them.
    for c_id in ("a-2", "a-6"):
        seed_consignee(api, c_id, "AE", operator_id="op3")
    for kind, expected in [("operators", ["op2"]), ("consignees", []), ("licenses", [])]:
        items, pages = walk(api, f"/v1/{kind}", "operator2", 1)
        assert [i["id"] for i in items] == expected and pages == 1
