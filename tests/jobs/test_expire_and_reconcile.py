"""Expiry exactly at the hold's time, across a year boundary; drift detected and repaired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from jobs.expire import expire_holds
from jobs.reconcile import reconcile
from ledger.audit import balances_from_entries, projected_balances
from ledger.clock import ManualClock
from ledger.job_records import list_findings
from ledger.service import Ledger
from ledger.store.models import Entry
from tests.factories import H100, consignee, line, operator, reserve


def _entries(ledger: Ledger) -> list[tuple[str, datetime]]:
    entry = Entry.__table__  # type: ignore[attr-defined]
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(entry.c.kind, entry.c.effective_at)
                            .order_by(entry.c.seq)).all()
    return [(r[0], r[1]) for r in rows]


def test_hold_expires_exactly_at_its_time_not_a_microsecond_before(
    ledger: Ledger, clock: ManualClock, make_ctx
) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    res = reserve(ledger, line("SG", "sg-lab", quantity=10), hold_seconds=3600).reservation
    assert res is not None
    clock.set(res.expires_at - timedelta(microseconds=1))
    assert expire_holds(make_ctx()).figures["expired"] == 0
    assert ledger.get_reservation(res.id).status == "held"
    clock.set(res.expires_at)
    result = expire_holds(make_ctx())
    assert result.outcome == "ok" and result.figures["expired"] == 1
    assert [k for k, _ in _entries(ledger)] == ["hold", "expire"]
    # The expire entry is effective at the expiry instant, whenever the job ran.
    assert _entries(ledger)[1][1] == res.expires_at
    assert expire_holds(make_ctx()).figures["expired"] == 0  # nothing twice


def test_expire_in_chunks_across_the_year_boundary_hits_the_old_year_bucket(
    ledger: Ledger, clock: ManualClock, make_ctx
) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    clock.set(datetime(2025, 12, 31, 23, 30, tzinfo=UTC))
    for _ in range(5):
        reserve(ledger, line("SG", "sg-lab", quantity=2), hold_seconds=1800)
    clock.set(datetime(2026, 1, 1, 0, 0, tzinfo=UTC))  # exactly the expiry instant
    result = expire_holds(make_ctx(), chunk=2)
    assert result.figures == {"expired": 5, "chunks": 3}
    projection = projected_balances(ledger.engine)
    assert projection[("lpp", "consignee:sg-lab", "2025")] == (0, 0)
    assert ("lpp", "consignee:sg-lab", "2026") not in projection
    # A new hold now draws on the 2026 bucket.
    reserve(ledger, line("SG", "sg-lab", quantity=1))
    assert projected_balances(ledger.engine)[("lpp", "consignee:sg-lab", "2026")] == (0, H100)


def test_drift_injected_by_sql_is_detected_repaired_and_gone(
    ledger: Ledger, make_ctx
) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    a = reserve(ledger, line("SG", "sg-lab", quantity=10)).reservation
    reserve(ledger, line("SG", "sg-lab", quantity=3))
    assert a is not None
    ledger.commit(a.id, "vendor1")
    key = ("lpp", "consignee:sg-lab", "2025")
    truth = balances_from_entries(ledger.engine)[key]
    with ledger.engine.begin() as conn:  # the attacker / the bug: projection only
        conn.execute(sa.text("UPDATE bucket SET held = held + 7, committed = committed - 1 "
                             "WHERE kind = 'lpp'"))
    entries_before = len(_entries(ledger))

    found = reconcile(make_ctx())
    assert found.figures["drift"] == 1 and found.figures["repaired"] == 0
    drift = list_findings(ledger.engine, kind="projection_drift")
    assert drift[0]["subject"] == "lpp:consignee:sg-lab:2025"
    assert drift[0]["details"]["projection"] == {"committed": truth[0] - 1, "held": truth[1] + 7}
    assert reconcile(make_ctx()).figures["new_findings"] == 0  # same drift: recorded once

    fixed = reconcile(make_ctx(repair=True))
    assert fixed.figures["repaired"] == 1
    assert projected_balances(ledger.engine)[key] == truth
    repaired = list_findings(ledger.engine, kind="projection_repaired")
    assert repaired[0]["details"]["after"] == {"committed": truth[0], "held": truth[1]}
    assert len(_entries(ledger)) == entries_before  # no entry written, none edited

    again = reconcile(make_ctx(repair=True))
    assert again.figures["drift"] == 0 and again.figures["repaired"] == 0


def test_repair_is_exact_when_writes_happen_after_the_snapshot(ledger: Ledger) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    reserve(ledger, line("SG", "sg-lab", quantity=10))
    from jobs.reconcile import snapshot

    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE bucket SET held = held + 5 WHERE kind = 'lpp'"))
    head, truth, _ = snapshot(ledger.engine)
    reserve(ledger, line("SG", "sg-lab", quantity=4))  # after the snapshot
    key = ("lpp", "consignee:sg-lab", "2025")
    ledger.repair_projection({key: truth[key]}, as_of_seq=head)
    assert projected_balances(ledger.engine)[key] == balances_from_entries(ledger.engine)[key]


def test_repair_invalidates_the_shared_headroom_cache(
    ledger: Ledger, make_ctx, make_settings, redis_url: str
) -> None:
    import redis

    from jobs.cache_rebuild import namespace

    settings = make_settings(redis_url=redis_url)
    ref_key = f"tpp:{namespace(settings.database_url)}:ref"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set(ref_key, "before")
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    reserve(ledger, line("SG", "sg-lab", quantity=1))
    assert reconcile(make_ctx(repair=True, settings=settings)).figures["repaired"] == 0
    assert client.get(ref_key) == "before"  # nothing repaired: cache untouched
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE bucket SET held = held + 7 WHERE kind = 'lpp'"))
    assert reconcile(make_ctx(repair=True, settings=settings)).figures["repaired"] == 1
    assert client.get(ref_key) not in (None, "before")  # every cached answer dropped
    client.delete(ref_key)
    client.close()
