"""Threshold alerts: once per crossing, quarter and year boundaries, webhook retries."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from jobs.alerts import check_thresholds
from ledger.clock import ManualClock
from ledger.service import Ledger
from tests.factories import consignee, line, operator, reserve

LPP_CAP = 26_900_000
NVEU_CAP_2025 = 1_583_200_000


class Receiver:
    """A webhook on 127.0.0.1 that answers 500 to its first `failures` requests."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[dict] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(failures=2)
    yield r
    r.server.shutdown()


def _alerts(ledger: Ledger) -> list[tuple]:
    with ledger.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT bucket_kind, bucket_period, threshold, crossing, cleared_at IS NOT NULL "
            "FROM alert ORDER BY id"))]


def test_lpp_alerts_once_per_crossing_with_webhook_retries(
    ledger: Ledger, make_ctx, make_settings, receiver: Receiver
) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    settings = make_settings(alert_webhooks=f"{receiver.url}, ")
    ctx = lambda: make_ctx(settings=settings, backoff=0.01)  # noqa: E731

    reserve(ledger, line("SG", "sg-lab", tpp=LPP_CAP * 79 // 100))
    assert check_thresholds(ctx()).figures["raised"] == 0
    res = reserve(ledger, line("SG", "sg-lab", tpp=LPP_CAP // 100 + 1)).reservation  # >= 80%
    first = check_thresholds(ctx())
    assert first.figures["raised"] == 1
    # Two 500s, then delivered on the third try of the same run.
    assert first.figures["delivered"] == 1 and first.figures["attempts"] == 3
    assert receiver.bodies[0]["threshold_percent"] == 80 and receiver.bodies[0]["crossing"] == 1
    assert check_thresholds(ctx()).figures["raised"] == 0  # still above: no second alert

    assert res is not None
    ledger.release(res.id, "vendor1")  # back below 80%: re-armed
    assert check_thresholds(ctx()).figures["cleared"] == 1
    reserve(ledger, line("SG", "sg-lab", tpp=LPP_CAP * 17 // 100))  # 96%: crosses both
    assert check_thresholds(ctx()).figures["raised"] == 2
    assert _alerts(ledger) == [("lpp", "2025", 80, 1, True), ("lpp", "2025", 80, 2, False),
                               ("lpp", "2025", 95, 1, False)]
    assert [(b["threshold_percent"], b["crossing"]) for b in receiver.bodies] == [
        (80, 1), (80, 2), (95, 1)]
    with ledger.engine.connect() as conn:
        states = conn.execute(sa.text("SELECT state, attempts FROM alert_delivery ORDER BY id"))
        assert [tuple(r) for r in states] == [("delivered", 3), ("delivered", 1),
                                              ("delivered", 1)]


def test_failed_deliveries_retry_next_run_then_give_up(
    ledger: Ledger, make_ctx, make_settings
) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    down = Receiver(failures=10**6)
    try:
        settings = make_settings(alert_webhooks=down.url, alert_max_attempts=4)
        reserve(ledger, line("SG", "sg-lab", tpp=LPP_CAP))
        first = check_thresholds(make_ctx(settings=settings, backoff=0.01))
        assert first.figures["delivery_pending"] == 2 and first.figures["attempts"] == 6
        second = check_thresholds(make_ctx(settings=settings, backoff=0.01))
        assert second.figures["delivery_failed"] == 2 and second.figures["attempts"] == 2
        with ledger.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT state, attempts, last_error FROM alert_delivery"))
            assert {tuple(r) for r in rows} == {("failed", 4, "HTTP 500")}
    finally:
        down.server.shutdown()


def test_nveu_cap_steps_up_at_the_quarter_start_and_lpp_rolls_over_at_new_year(
    ledger: Ledger, clock: ManualClock, make_ctx
) -> None:
    operator(ledger, "g42", hq="AE", veu="NVEU", veu_country="AE")
    consignee(ledger, "ae-dc", "AE", operator_id="g42")
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    clock.set(datetime(2025, 12, 31, 22, 0, tzinfo=UTC))
    reserve(ledger, line("AE", "ae-dc", operator_id="g42", tpp=NVEU_CAP_2025 * 85 // 100),
            hold_seconds=30 * 86400)
    reserve(ledger, line("SG", "sg-lab", tpp=LPP_CAP * 90 // 100), hold_seconds=30 * 86400)
    assert check_thresholds(make_ctx()).figures["raised"] == 2  # nveu 80%, lpp-2025 80%

    clock.set(datetime(2026, 1, 1, tzinfo=UTC) - timedelta(microseconds=1))
    assert check_thresholds(make_ctx()).figures["cleared"] == 0  # the 2025 cap still applies
    clock.set(datetime(2026, 1, 1, tzinfo=UTC))  # 2026Q1: the NVEU cap steps up
    assert check_thresholds(make_ctx()).figures["cleared"] == 1
    # The 2025 LPP bucket keeps its alert; 2026 is a new bucket with its own crossings.
    reserve(ledger, line("SG", "sg-lab", tpp=LPP_CAP * 81 // 100))
    assert check_thresholds(make_ctx()).figures["raised"] == 1
    assert _alerts(ledger) == [("lpp", "2025", 80, 1, False), ("nveu", "all", 80, 1, True),
                               ("lpp", "2026", 80, 1, False)]
