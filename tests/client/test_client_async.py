"""The async client against the live server: the same contract, awaited."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ledger_client import AsyncLedgerClient, Forbidden, QuotaExceeded, line

from tests.client.conftest import FlakyProxy, LiveServer, seed_parties

H100 = "H100-SXM"


async def test_async_walk_through(client: Any, live: LiveServer) -> None:
    p = seed_parties(client("admin"))
    async with (AsyncLedgerClient(live.url, live.keys["vendor"]) as vendor,
                AsyncLedgerClient(live.url, live.keys["operator"]) as noc):
        order = [line("AE", "g42", p.consignee_id, chip=H100, quantity=1000)]
        assert (await vendor.evaluate(order))["allowed"]
        r = await vendor.reserve(order)
        assert r["status"] == "held"
        small = [line("AE", "g42", p.consignee_id, chip=H100, quantity=10)]
        again = await vendor.reserve(small, idempotency_key="async-1")
        assert (await vendor.reserve(small, idempotency_key="async-1"))["id"] == again["id"]
        assert (await vendor.commit(r["id"]))["status"] == "committed"
        assert (await vendor.release(again["id"]))["status"] == "released"
        room = await noc.headroom("AE", "g42", p.consignee_id)
        lpp = next(b for b in room["buckets"] if b["kind"] == "lpp")
        assert lpp["committed"] == 15_832_000 and lpp["held"] == 0

        with pytest.raises(QuotaExceeded) as denied:
            await vendor.reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=800)])
        assert {v.constraint for v in denied.value.violations} >= {"lpp"}
        with pytest.raises(Forbidden):
            await noc.balances(operator_id="not-mine")

        kinds = [e["kind"] async for e in noc.entries(consignee_id=p.consignee_id, limit=1)]
        assert kinds == ["hold", "hold", "commit", "release"]
        mine = [x["id"] async for x in vendor.list_reservations(limit=2)]
        assert r["id"] in mine and again["id"] in mine
        assert [o["id"] async for o in noc.list_operators()] == ["g42"]
        assert (await noc.get_operator("g42"))["id"] == "g42"


async def test_async_retry_keeps_the_key(client: Any, live: LiveServer,
                                         proxy: FlakyProxy) -> None:
    p = seed_parties(client("admin"))
    proxy.script = [("lose", 503, "1"), ("fail", 429, "0")]
    started = time.monotonic()
    async with AsyncLedgerClient(proxy.url, live.keys["vendor"]) as vendor:
        r = await vendor.reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=3)])
        results = await vendor.reserve_batch(
            [{"lines": [line("AE", "g42", p.consignee_id, chip=H100, quantity=1)]}])
    assert time.monotonic() - started >= 1.0
    assert [s.answered for s in proxy.seen] == [503, 429, 201, 200]
    keys = {s.idempotency_key for s in proxy.seen[:3]}
    assert len(keys) == 1 and None not in keys
    assert results[0].status == 201
    async with AsyncLedgerClient(live.url, live.keys["auditor"]) as auditor:
        holds = [e async for e in auditor.entries(consignee_id=p.consignee_id, kind="hold")]
    assert [h["reservation_id"] for h in holds] == [r["id"], (results[0].reservation or {})["id"]]
