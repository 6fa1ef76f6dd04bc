"""CSV exports through the client: streamed lines, the JSON rows, retries before the stream,
typed errors."""

from __future__ import annotations

import csv
from typing import Any

import pytest
from ledger_client import AsyncLedgerClient, Forbidden, line

from tests.client.conftest import FlakyProxy, LiveServer, seed_parties

H100 = "H100-SXM"


def test_entries_and_balances_csv(client: Any, proxy: FlakyProxy) -> None:
    admin, vendor = client("admin"), client("vendor")
    p = seed_parties(admin)
    for _ in range(3):
        vendor.reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=2)])
    auditor = client("auditor", base_url=proxy.url)
    proxy.script = [("fail", 503, "0")]  # retried: the answer had not started
    rows = list(csv.DictReader(auditor.entries_csv(consignee_id=p.consignee_id)))
    assert [s.answered for s in proxy.seen] == [503, 200]
    want = list(client("auditor").entries(consignee_id=p.consignee_id))
    assert [r["seq"] for r in rows] == [str(e["seq"]) for e in want]
    assert [r["hash"] for r in rows] == [e["hash"] for e in want]
    bal = list(csv.DictReader(client("operator").balances_csv(consignee_id=p.consignee_id)))
    assert any(r["kind"] == "lpp" and r["held"] == str(6 * 15_832) for r in bal)
    with pytest.raises(Forbidden):
        list(vendor.entries_csv())


async def test_async_entries_csv(client: Any, live: LiveServer) -> None:
    p = seed_parties(client("admin"))
    client("vendor").reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=1)])
    async with AsyncLedgerClient(live.url, live.keys["operator"]) as noc:
        lines = [x async for x in noc.entries_csv(consignee_id=p.consignee_id)]
        assert lines[0].startswith("seq,kind,reservation_id")
        rows = list(csv.DictReader(lines))
        assert [r["kind"] for r in rows] == ["hold"]
        with pytest.raises(Forbidden):
            [x async for x in noc.entries_csv(operator_id="not-mine")]
