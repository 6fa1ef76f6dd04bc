"""Alerts and balances take a bucket's cap from the one policy function, so they agree,
also where the quota grants nothing now (a closed allocation window: cap 0)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from jobs.alerts import check_thresholds
from jobs.context import JobContext
from ledger.clock import ManualClock
from ledger.queries import LedgerReader
from ledger.service import Ledger
from tests.factories import consignee, license_, line, operator, reserve

ALLOCATION = 790_000_000
LPP_CAP = 26_900_000


def _balance_caps(ledger: Ledger, at: datetime) -> dict[tuple[str, str], int]:
    rows = LedgerReader(ledger.engine, ledger.rule_set).balances_as_of(at, country="MY")
    return {(b["kind"], b["key"]): b["cap"] for b in rows}


def _alert_caps(ledger: Ledger) -> dict[tuple[str, str], int]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT bucket_kind, bucket_key, cap FROM alert"))
        return {(r[0], r[1]): r[2] for r in rows}


def test_alerts_and_balances_agree_on_caps_inside_and_outside_the_window(
    ledger: Ledger, clock: ManualClock, make_ctx: Callable[..., JobContext]
) -> None:
    operator(ledger, "op1", hq="US")
    consignee(ledger, "my-dc", "MY")
    license_(ledger, "my-lic", "MY", 10**9)
    clock.set(datetime(2027, 12, 31, 12, 0, tzinfo=UTC))  # the allocation's last day
    for lines in ([line("MY", "my-dc", tpp=LPP_CAP)],
                  [line("MY", "my-dc", tpp=ALLOCATION * 85 // 100, license_id="my-lic")]):
        res = reserve(ledger, *lines).reservation
        assert res is not None
        ledger.commit(res.id, "vendor1")

    inside = check_thresholds(make_ctx())
    caps = _balance_caps(ledger, clock.now())
    assert caps == {("country_allocation", "MY"): ALLOCATION, ("license", "my-lic"): 10**9,
                    ("lpp", "consignee:my-dc"): LPP_CAP}
    assert inside.figures["buckets"] == 3  # every bucket balances shows with a cap
    # lpp at 100 % (80 and 95), allocation at 85 % (80): each recorded with balances' cap.
    assert inside.figures["raised"] == 3
    assert _alert_caps(ledger) == {k: caps[k] for k in [("lpp", "consignee:my-dc"),
                                                        ("country_allocation", "MY")]}

    clock.set(datetime(2028, 1, 1, tzinfo=UTC))  # window closed: the allocation grants nothing
    caps = _balance_caps(ledger, clock.now())
    assert caps[("country_allocation", "MY")] == 0
    outside = check_thresholds(make_ctx())
    # A zero cap has no percentage: alerts skip exactly the buckets balances show at 0.
    assert outside.figures["buckets"] == sum(1 for cap in caps.values() if cap)
    assert outside.figures["raised"] == outside.figures["cleared"] == 0
