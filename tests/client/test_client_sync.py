"""The sync client against a live `ledger serve`: the whole contract, typed errors, paging."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
import pytest
from ledger_client import (
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    LedgerClient,
    NotFound,
    NotPermitted,
    QuotaExceeded,
    Unauthorized,
    Violation,
    line,
)

from tests.client.conftest import LiveServer, seed_parties

H100 = "H100-SXM"  # 15,832 TPP
LPP_CAP = 26_900_000


def test_walk_through_reserve_commit_deny_verify(client: Any) -> None:
    admin, vendor, noc = client("admin"), client("vendor"), client("operator")
    p = seed_parties(admin)
    assert admin.get_operator("g42")["hq_country"] == "AE"
    assert admin.get_consignee(p.consignee_id)["operator_id"] == "g42"

    before = noc.headroom("AE", "g42", p.consignee_id)
    lpp = next(b for b in before["buckets"] if b["kind"] == "lpp")
    assert lpp["available"] == LPP_CAP

    order = [line("AE", "g42", p.consignee_id, chip=H100, quantity=1000)]
    assert vendor.evaluate(order)["allowed"] is True
    r = vendor.reserve(order, hold_seconds=86400)
    assert r["status"] == "held" and r["lines"][0]["path"] == "lpp"
    assert r["tpp"] == 15_832_000

    after = noc.headroom("AE", "g42", p.consignee_id)
    lpp = next(b for b in after["buckets"] if b["kind"] == "lpp")
    assert (lpp["held"], lpp["available"]) == (15_832_000, LPP_CAP - 15_832_000)

    assert vendor.commit(r["id"])["status"] == "committed"
    assert vendor.commit(r["id"])["status"] == "committed"  # repeating is 200, same body
    assert vendor.get_reservation(r["id"])["status"] == "committed"

    with pytest.raises(QuotaExceeded) as denied:
        vendor.reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=800)])
    err = denied.value
    assert err.status == 409 and err.slug == "quota-exceeded"
    assert err.type == "https://tpp-ledger.dev/problems/quota-exceeded"
    assert err.title == "Quota exceeded" and err.detail and "nothing was held" in err.detail
    assert err.problem["violations"]
    lpp_v = next(v for v in err.violations if v.constraint == "lpp")
    assert isinstance(lpp_v, Violation)
    assert (lpp_v.line, lpp_v.cap, lpp_v.used, lpp_v.requested) == (0, LPP_CAP, 15_832_000,
                                                                     12_665_600)
    assert lpp_v.rule and lpp_v.reason and lpp_v.key == f"consignee:{p.consignee_id}"

    entries = list(noc.entries(consignee_id=p.consignee_id))
    assert [e["kind"] for e in entries] == ["hold", "commit"]
    balances = noc.balances(consignee_id=p.consignee_id)
    assert any(b["kind"] == "lpp" and b["committed"] == 15_832_000 for b in balances["buckets"])
    assert client("auditor").verify()["ok"] is True
    assert any(c["model"] == H100 for c in vendor.chips())
    assert vendor.policy()["name"]


def test_same_key_same_reservation_holds_once(client: Any) -> None:
    admin, vendor = client("admin"), client("vendor")
    p = seed_parties(admin)
    order = [line("AE", "g42", p.consignee_id, chip=H100, quantity=10)]
    key = f"order-{uuid.uuid4()}"
    first = vendor.reserve(order, idempotency_key=key)
    second = vendor.reserve(order, idempotency_key=key)
    assert first["id"] == second["id"]
    holds = list(admin.entries(consignee_id=p.consignee_id, kind="hold"))
    assert len(holds) == 1
    with pytest.raises(IdempotencyKeyReused) as reused:  # same key, other body: 422
        vendor.reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=11)],
                       idempotency_key=key)
    assert reused.value.status == 422 and isinstance(reused.value, InvalidInput)
    # Without a key of our own, each call gets a fresh one: two reservations.
    a, b = vendor.reserve(order), vendor.reserve(order)
    assert a["id"] != b["id"]


def test_typed_errors(client: Any, live: LiveServer) -> None:
    admin, vendor = client("admin"), client("vendor")
    p = seed_parties(admin)

    with pytest.raises(InvalidInput) as bad:
        vendor.reserve([line("AE", "g42", p.consignee_id, chip="NO-SUCH-CHIP", quantity=1)])
    assert bad.value.status == 422 and bad.value.field and "chip" in bad.value.field

    with pytest.raises(InvalidInput) as bad_country:
        admin.put_operator("zz-op", name="Nowhere", hq_country="ZZ")
    assert bad_country.value.field == "hq_country"

    with pytest.raises(NotFound) as missing:
        vendor.get_reservation("res_" + "0" * 32)
    assert missing.value.status == 404 and missing.value.title

    with LedgerClient(live.url, "not-a-key") as stranger, pytest.raises(Unauthorized) as who:
        stranger.chips()
    assert who.value.status == 401

    with pytest.raises(Forbidden):
        client("operator").entries(operator_id="someone-else").__next__()
    with pytest.raises(Forbidden):
        client("operator").reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=1)])

    r = vendor.reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=1)])
    vendor.commit(r["id"])
    with pytest.raises(Conflict) as state:
        vendor.release(r["id"])
    assert state.value.status == 409 and state.value.slug == "already-committed"
    assert state.value.code == "already_committed"
    with pytest.raises(Forbidden):
        client("vendor2").commit(r["id"])  # another vendor's reservation

    # Tier 3 (no licence can be given here): not-permitted, constraint a rule.
    admin.put_operator("cn-op", name="CN Op", hq_country="CN")
    admin.put_consignee("cn-site", name="CN Site", country="CN", operator_id="cn-op")
    with pytest.raises(NotPermitted) as rule:
        vendor.reserve([line("CN", "cn-op", "cn-site", chip=H100, quantity=1)])
    assert rule.value.violations and rule.value.violations[0].constraint in (
        "tier3", "license_required", "prohibited")


def test_licence_and_batch(client: Any) -> None:
    admin, vendor = client("admin"), client("vendor")
    p = seed_parties(admin)
    lic = f"lic-{uuid.uuid4().hex[:8]}"
    admin.put_license(lic, country="AE", consignee_id=p.consignee_id, tpp=50_000_000,
                      valid_from=date(2020, 1, 1), valid_to=date(2099, 12, 31))
    assert admin.get_license(lic)["tpp"] == 50_000_000
    results = vendor.reserve_batch([
        {"lines": [line("AE", "g42", p.consignee_id, chip=H100, quantity=100)]},
        {"lines": [line("AE", "g42", p.consignee_id, chip=H100, quantity=10_000)],
         "idempotency_key": "too-big"},
    ])
    assert [r.status for r in results] == [201, 409]
    assert results[0].ok and results[0].reservation and results[0].reservation["id"]
    assert results[1].idempotency_key == "too-big"
    assert isinstance(results[1].error, QuotaExceeded) and results[1].error.violations
    # The batch's generated keys are real idempotency keys: replaying them holds nothing more.
    again = vendor.reserve_batch([
        {"lines": [line("AE", "g42", p.consignee_id, chip=H100, quantity=100)],
         "idempotency_key": results[0].idempotency_key}])
    assert again[0].reservation and results[0].reservation
    assert again[0].reservation["id"] == results[0].reservation["id"]


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return super().handle_request(request)


def test_paging_walks_every_page_lazily(client: Any, live: LiveServer) -> None:
    admin, vendor = client("admin"), client("vendor")
    p = seed_parties(admin)
    ids = [vendor.reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=1)])["id"]
           for _ in range(5)]
    transport = CountingTransport()
    with LedgerClient(live.url, live.keys["auditor"], transport=transport) as auditor:
        walked = auditor.entries(consignee_id=p.consignee_id, limit=2)
        first = next(walked)  # generators fetch lazily: one page so far
        assert len(transport.requests) == 1
        rest = list(walked)
        assert len(transport.requests) == 3  # 2 + 2 + 1
        seqs = [first["seq"], *(e["seq"] for e in rest)]
        assert [e["reservation_id"] for e in [first, *rest]] == ids
        assert seqs == sorted(seqs)
        one_page = auditor.page("/v1/entries", consignee_id=p.consignee_id, limit=1000)
        assert [e["seq"] for e in one_page.items] == seqs and one_page.next_cursor is None

    mine = [r["id"] for r in client("vendor").list_reservations(limit=3)]
    assert set(ids) <= set(mine) and len(mine) == len(set(mine))
    for n in range(4):
        admin.put_operator(f"pg-op-{n}", name=f"P{n}", hq_country="AE")
    ops = [o["id"] for o in admin.list_operators(limit=2)]
    assert {f"pg-op-{n}" for n in range(4)} <= set(ops) and ops == sorted(ops)
    assert p.consignee_id in {c["id"] for c in admin.list_consignees(limit=2)}
    assert list(client("operator").list_operators()) == [admin.get_operator("g42")]
    assert list(admin.list_licenses(limit=1)) is not None


def test_keys_list_and_revoke(client: Any, live: LiveServer) -> None:
    admin = client("admin")
    doomed = live.create_key("auditor", "doomed")
    with LedgerClient(live.url, doomed) as victim:
        victim.verify()
        key = next(k for k in admin.list_keys(limit=2) if k["name"] == "doomed")
        assert key["role"] == "auditor" and key["revoked_at"] is None
        admin.revoke_key(key["id"])
        admin.revoke_key(key["id"])  # again: no change
        with pytest.raises(Unauthorized):
            victim.verify()
    with pytest.raises(NotFound):
        admin.revoke_key("key_0000000000000000")


def test_server_logs_json_lines_with_the_request_id(live: LiveServer) -> None:
    """`ledger serve` with stderr not a terminal logs JSON; a problem answer's line carries
    the request id that the X-Request-ID header returned (given or generated)."""
    import json
    import time

    given = httpx.get(f"{live.url}/v1/reservations/res_nothing",
                      headers={"Authorization": f"Bearer {live.keys['vendor']}",
                               "X-Request-ID": "client-trace-7"})
    assert given.status_code == 404 and given.headers["x-request-id"] == "client-trace-7"
    made = httpx.get(f"{live.url}/v1/chips")
    assert made.status_code == 401
    rid = made.headers["x-request-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in live.logs().splitlines() if x.startswith("{")]
        ids = {x.get("request_id") for x in lines}
        if {"client-trace-7", rid} <= ids:
            break
        time.sleep(0.1)
    assert {"client-trace-7", rid} <= ids
    line_ = next(x for x in lines if x.get("request_id") == rid and x["event"] == "request")
    assert (line_["status"], line_["route"], line_["level"]) == (401, "/v1/chips", "info")
