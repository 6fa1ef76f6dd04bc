"""Shipment feeds: every finding kind, idempotent imports, the inbox watch."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobs.shipments import ShipmentFeedError, import_feed, watch_inbox
from ledger.clock import ManualClock
from ledger.job_records import list_findings
from ledger.service import Ledger
from tests.factories import consignee, line, operator, reserve


@pytest.fixture
def committed(ledger: Ledger) -> dict[str, str]:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    consignee(ledger, "sg-other", "SG")
    ids = {}
    for name, qty in (("a", 10), ("b", 5), ("late", 2)):
        res = reserve(ledger, line("SG", "sg-lab", quantity=qty)).reservation
        assert res is not None
        ledger.commit(res.id, "vendor1")
        ids[name] = res.id
    held = reserve(ledger, line("SG", "sg-lab", quantity=1)).reservation
    assert held is not None
    ids["held"] = held.id
    return ids


def _counts(ledger: Ledger) -> tuple[int, ...]:
    with ledger.engine.connect() as conn:
        return tuple(
            conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
            for t in ("shipment_import", "shipment", "finding", "entry")
        )


def _kinds(ledger: Ledger) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in list_findings(ledger.engine, limit=500):
        out[f["kind"]] = out.get(f["kind"], 0) + 1
    return out


def test_every_finding_kind_and_the_same_file_twice_changes_nothing(
    ledger: Ledger, clock: ManualClock, committed: dict[str, str], tmp_path: Path
) -> None:
    a, b, held = committed["a"], committed["b"], committed["held"]
    csv = (
        "reservation_id,chip,quantity,ship_date,destination,consignee\n"
        f"{a},H100-SXM,6,2025-06-03,SG,sg-lab\n"        # fine so far
        f"{a},H100-SXM,6,2025-06-04,SG,sg-lab\n"        # 12 > 10 reserved: over-shipment
        f"{b},H100-SXM,5,2025-06-03,MY,sg-lab\n"        # destination mismatch
        f"{b},H100-SXM,0001,2025-06-03,SG,sg-other\n"   # consignee mismatch (and over: 6 > 5)
        "res_unknown,H100-SXM,1,2025-06-03,SG,sg-lab\n"  # no such reservation
        f"{held},H100-SXM,1,2025-06-03,SG,sg-lab\n"     # held, not committed
    ).encode()
    first = import_feed(ledger, csv, "feed.csv")
    assert not first.already_imported and first.rows == 6
    kinds = _kinds(ledger)
    assert kinds == {"over_shipment": 2, "destination_mismatch": 1, "consignee_mismatch": 1,
                     "shipment_without_reservation": 2}
    over = next(f for f in list_findings(ledger.engine, kind="over_shipment")
            if f["subject"] == a)
    assert over["details"] == {"reservation_id": a, "basis": "chip_quantity",
                               "chip": "H100-SXM", "reserved": 10, "shipped": 12}

    before = _counts(ledger)
    again = import_feed(ledger, csv, "renamed.csv")
    assert again.already_imported and again.import_id == first.import_id
    assert _counts(ledger) == before

    # Not shipped within N days: "late" was committed at START and never shipped.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "feed.csv").write_bytes(csv)  # already imported: a no-op in the watch
    from ledger.settings import Settings

    settings = Settings(database_url=str(ledger.engine.url), shipment_inbox=str(inbox),
                        shipment_deadline_days=30)
    from jobs.context import JobContext

    clock.advance(timedelta(days=30) / timedelta(seconds=1) - 1)
    assert watch_inbox(JobContext(ledger, settings)).figures["not_shipped_new"] == 0
    clock.advance(1)
    result = watch_inbox(JobContext(ledger, settings))
    assert result.figures["imported"] == 0 and result.figures["not_shipped_new"] == 1
    assert list_findings(ledger.engine, kind="not_shipped")[0]["subject"] == committed["late"]
    assert watch_inbox(JobContext(ledger, settings)).figures["new_findings"] == 0


def test_json_lines_feed_over_tpp_and_bad_rows_rejected_whole(
    ledger: Ledger, committed: dict[str, str], tmp_path: Path
) -> None:
    a = committed["a"]
    rows = [{"reservation_id": a, "chip": "H100-SXM", "quantity": 10, "ship_date": "2025-06-05",
             "destination": "SG", "consignee": "sg-lab"},
            {"reservation_id": a, "chip": "H200-SXM", "quantity": 1, "ship_date": "2025-06-05",
             "destination": "SG", "consignee": "sg-lab"}]  # a chip the reservation never named
    data = "\n".join(json.dumps(r) for r in rows).encode()
    import_feed(ledger, data, "feed.jsonl")
    over = list_findings(ledger.engine, kind="over_shipment")
    assert [f["details"]["basis"] for f in over] == ["tpp"]
    before = _counts(ledger)
    with pytest.raises(ShipmentFeedError, match="row 2: quantity"):
        import_feed(ledger, data.replace(b'"quantity": 1,', b'"quantity": -1,'), "x.jsonl")
    assert _counts(ledger) == before


def test_import_shipments_cli_twice(ledger: Ledger, committed: dict[str, str], tmp_path: Path,
                                    monkeypatch, capsys) -> None:
    from ledger.cli import main
    from ledger.settings import get_settings

    feed = tmp_path / "feed.csv"
    feed.write_text("reservation_id,chip,quantity,ship_date,destination,consignee\n"
                    f"{committed['a']},H100-SXM,3,2025-06-03,SG,sg-lab\n")
    monkeypatch.setenv("LEDGER_DATABASE_URL", ledger.engine.url.render_as_string(False))
    get_settings.cache_clear()
    try:
        assert main(["import-shipments", str(feed)]) == 0
        assert "1 row, 0 new findings" in capsys.readouterr().out
        assert main(["import-shipments", str(feed)]) == 0
        assert "already imported" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
