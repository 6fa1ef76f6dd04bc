"""Retries: 503 and 429 honour Retry-After with the same Idempotency-Key, within bounds."""

from __future__ import annotations

import time
from typing import Any

import pytest
from ledger_client import (
    NO_RETRY,
    LedgerClient,
    RetryPolicy,
    TooManyRequests,
    Unavailable,
    line,
)
from ledger_client.errors import parse_retry_after

from tests.client.conftest import FlakyProxy, LiveServer, seed_parties, start_server

H100 = "H100-SXM"


def test_lost_answer_503_is_retried_with_the_same_key_and_holds_once(
    client: Any, proxy: FlakyProxy
) -> None:
    """The proxy forwards the reservation, then loses its answer (503, Retry-After: 1):
    the retry carries the same Idempotency-Key, so the ledger answers the first
    reservation again and holds nothing twice."""
    p = seed_parties(client("admin"))
    vendor = client("vendor", base_url=proxy.url)
    proxy.script = [("lose", 503, "1")]
    started = time.monotonic()
    r = vendor.reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=5)])
    assert time.monotonic() - started >= 1.0  # Retry-After honoured
    posts = [s for s in proxy.seen if s.method == "POST"]
    assert [s.answered for s in posts] == [503, 201]
    assert posts[0].idempotency_key and posts[0].idempotency_key == posts[1].idempotency_key
    holds = list(client("auditor").entries(consignee_id=p.consignee_id, kind="hold"))
    assert [h["reservation_id"] for h in holds] == [r["id"]]


def test_429_is_retried_after_retry_after(client: Any, proxy: FlakyProxy) -> None:
    p = seed_parties(client("admin"))
    vendor = client("vendor", base_url=proxy.url)
    proxy.script = [("fail", 429, "1"), ("fail", 503, "0")]
    started = time.monotonic()
    r = vendor.reserve([line("AE", "g42", p.consignee_id, chip=H100, quantity=5)],
                       idempotency_key="mine-1")
    assert time.monotonic() - started >= 1.0
    assert [s.answered for s in proxy.seen] == [429, 503, 201]
    assert {s.idempotency_key for s in proxy.seen} == {"mine-1"}
    assert r["status"] == "held"
    # Reads are retried the same way.
    proxy.script = [("fail", 503, "0")]
    assert vendor.get_reservation(r["id"])["id"] == r["id"]


def test_attempts_and_total_time_are_bounded(client: Any, live: LiveServer,
                                             proxy: FlakyProxy) -> None:
    proxy.script = [("fail", 503, "0")] * 10
    with (LedgerClient(proxy.url, live.keys["admin"], retry=RetryPolicy(max_attempts=3)) as admin,
          pytest.raises(Unavailable) as down):
        admin.chips()
    assert len(proxy.seen) == 3 and down.value.retry_after == 0
    assert down.value.status == 503

    proxy.seen.clear()
    proxy.script = [("fail", 503, "30")]  # a wait past the time budget is not taken
    started = time.monotonic()
    with (LedgerClient(proxy.url, live.keys["admin"],
                       retry=RetryPolicy(max_total_seconds=5)) as admin,
          pytest.raises(Unavailable) as later):
        admin.chips()
    assert time.monotonic() - started < 2 and later.value.retry_after == 30
    assert len(proxy.seen) == 1

    proxy.seen.clear()
    proxy.script = [("fail", 503, "0")]
    with (LedgerClient(proxy.url, live.keys["admin"], retry=NO_RETRY) as admin,
          pytest.raises(Unavailable)):
        admin.chips()


def test_transport_errors_are_retried_then_raised(live: LiveServer) -> None:
    import httpx

    from tests.client.conftest import free_port

    with (LedgerClient(f"http://127.0.0.1:{free_port()}", live.keys["admin"],
                       retry=RetryPolicy(max_attempts=2, backoff=0.01)) as nowhere,
          pytest.raises(httpx.ConnectError)):
        nowhere.chips()


def test_real_rate_limit_answers_too_many_requests(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The server's own throttle (LEDGER_RATE_LIMIT_PER_MINUTE=3): the fourth request of
    the minute is 429 with Retry-After up to the window's end; a wait longer than the
    client's time budget is not taken, the typed error is raised at once."""
    server = start_server(tmp_path_factory.mktemp("throttled"), roles=("auditor",),
                          LEDGER_RATE_LIMIT_PER_MINUTE="3")
    try:
        if 60 - time.time() % 60 < 10:  # keep the three calls in one window
            time.sleep(60 - time.time() % 60 + 0.1)
        with LedgerClient(server.url, server.keys["auditor"],
                          retry=RetryPolicy(max_total_seconds=5)) as auditor:
            for _ in range(3):
                auditor.chips()
            started = time.monotonic()
            with pytest.raises(TooManyRequests) as throttled:
                auditor.chips()
        assert time.monotonic() - started < 2
        assert throttled.value.status == 429 and throttled.value.slug == "too-many-requests"
        assert throttled.value.retry_after is not None and throttled.value.retry_after > 5
    finally:
        server.stop()


def test_retry_after_forms() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
