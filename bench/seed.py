"""Bench data: a fresh PostgreSQL database, reference data, keys, and a bulk preload
of the ledger through the service itself (real entries, real chain)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from ledger.clock import SystemClock
from ledger.group_commit import GroupCommitter
from ledger.keys import create_key
from ledger.policy.ruleset import load_rule_set
from ledger.reference import ConsigneeInput, LicenseInput, OperatorInput
from ledger.service import Ledger
from ledger.store.engine import create_ledger_engine
from ledger.store.migrate import upgrade
from ledger.views import LineInput, ReserveCommand

CONSIGNEES = 200  # spread LPP use so reservations keep being accepted
COUNTRY = "SG"
LINE_TPP = 1_000  # small lines: 26,900 fit in one consignee's LPP bucket


@dataclass
class BenchDb:
    url: str
    admin_key: str
    vendor_key: str


def consignee_id(i: int) -> str:
    return f"bench-c{i % CONSIGNEES}"


def fresh_database(admin_url: str, name: str) -> str:
    admin = create_ledger_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = create_ledger_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def seed(url: str) -> BenchDb:
    engine = create_ledger_engine(url)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"), SystemClock())
    ledger.put_operator(OperatorInput("bench-op", "Bench operator", COUNTRY))
    for i in range(CONSIGNEES):
        ledger.put_consignee(ConsigneeInput(consignee_id(i), f"c{i}", COUNTRY, "bench-op"))
    from datetime import date

    ledger.put_license(LicenseInput("bench-lic", COUNTRY, 10**12, date(2025, 1, 1),
                                    date(2027, 12, 31)))
    now = SystemClock().now()
    admin = create_key(engine, "admin", "bench-admin", now)
    vendor = create_key(engine, "vendor", "bench-vendor", now)
    engine.dispose()
    return BenchDb(url, admin, vendor)


def preload(url: str, entries: int, start: int = 0, batch: int = 1000) -> float:
    """Adds `entries` one-line holds (one entry each) in batches; returns seconds taken."""
    engine = create_ledger_engine(url)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"), SystemClock())
    committer = GroupCommitter(ledger, max_batch=batch)
    started = time.perf_counter()
    futures = []
    for i in range(start, start + entries):
        cmd = ReserveCommand(
            "preload",
            (LineInput(COUNTRY, "bench-op", consignee_id(i), tpp=LINE_TPP),),
            30 * 86400,
            f"pre-{i}",
        )
        futures.append(committer.submit(cmd))
        if len(futures) >= 20 * batch:
            _drain(futures)
    _drain(futures)
    committer.close()
    engine.dispose()
    return time.perf_counter() - started


def _drain(futures: list) -> None:  # type: ignore[type-arg]
    for f in futures:
        result = f.result()
        if not getattr(result, "held", False):
            raise RuntimeError(f"preload reservation not held: {result!r}")
    futures.clear()
