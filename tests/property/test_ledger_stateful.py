"""Random sequences of reserve / commit / release / expire / clock moves against the
real service and a small in-memory model. After every step:
no bucket over its cap; every balance equals the sum of its entries; the chain
verifies; an idempotent replay changes nothing."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from ledger.audit import balances_from_entries, projected_balances, verify_chain
from ledger.clock import ManualClock
from ledger.errors import Conflict
from ledger.policy.ruleset import load_rule_set
from ledger.service import Ledger
from ledger.store.engine import create_ledger_engine
from ledger.store.models import UTCDateTime
from tests.conftest import POSTGRES_URL, START, _admin_engine
from tests.factories import consignee, license_, line, operator, reserve

RULES = load_rule_set("ai-diffusion-2025")
LPP_CAP = 26_900_000
ALLOCATION_CAP = 790_000_000
LICENSE_TPP = {"lic-th": 60_000_000, "lic-my": 900_000_000}
CONSIGNEES = [("th-a", "TH", "g"), ("th-b", "TH", "g"), ("th-c", "TH", None), ("my-a", "MY", None)]


@dataclass
class ModelReservation:
    id: str
    tpp: int
    expires_at: datetime
    status: str = "held"


class LedgerMachine(RuleBasedStateMachine):
    make_url: object = None  # set by the test: () -> (url, cleanup)

    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.url, self.cleanup = self.make_url()  # type: ignore[operator]
        self.engine = create_ledger_engine(self.url)
        self.clock = ManualClock(START)
        self.ledger = Ledger(self.engine, RULES, self.clock)
        operator(self.ledger, "op1", hq="SG")
        for cid, country, group in CONSIGNEES:
            consignee(self.ledger, cid, country, group=group)
        license_(self.ledger, "lic-th", "TH", LICENSE_TPP["lic-th"])
        license_(self.ledger, "lic-my", "MY", LICENSE_TPP["lic-my"])
        self.model: dict[str, ModelReservation] = {}
        self.key_counter = 0

    def teardown(self) -> None:
        self.engine.dispose()
        self.cleanup()  # type: ignore[operator]

    # -- rules ---------------------------------------------------------------

    @rule(
        target=requests,
        who=st.sampled_from(CONSIGNEES),
        h100s=st.integers(1, 1800),
        with_license=st.booleans(),
        hold=st.sampled_from([30, 600, 86400]),
    )
    def reserve(self, who, h100s, with_license, hold):  # type: ignore[no-untyped-def]
        cid, country, _ = who
        lic = ("lic-th" if country == "TH" else "lic-my") if with_license else None
        self.key_counter += 1
        key = f"k{self.key_counter}"
        req = (line(country, cid, quantity=h100s, license_id=lic), key, hold)
        out = reserve(self.ledger, req[0], key=key, hold_seconds=hold)
        if out.reservation is not None:
            r = out.reservation
            assert r.tpp == h100s * 15_832
            self.model[r.id] = ModelReservation(r.id, r.tpp, r.expires_at)
        return (req, out.reservation.id if out.reservation else None)

    @rule(req=requests)
    def replay(self, req):  # type: ignore[no-untyped-def]
        (line_, key, hold), first_id = req
        before = self._entry_count()
        out = reserve(self.ledger, line_, key=key, hold_seconds=hold)
        assert out.replayed
        assert (out.reservation.id if out.reservation else None) == first_id
        assert self._entry_count() == before

    @rule(pick=st.integers(0, 10_000), action=st.sampled_from(["commit", "release"]))
    def settle(self, pick, action):  # type: ignore[no-untyped-def]
        if not self.model:
            return
        m = self.model[sorted(self.model)[pick % len(self.model)]]
        now = self.clock.now()
        live = m.status == "held" and now < m.expires_at
        done = {"commit": "committed", "release": "released"}[action]
        try:
            view = getattr(self.ledger, action)(m.id, "vendor1")
        except Conflict:
            assert not live and m.status != done
            return
        assert live or m.status == done
        assert view.status == done
        m.status = done

    @rule(seconds=st.sampled_from([1, 29, 30, 599, 3600, 86400]))
    def advance(self, seconds):  # type: ignore[no-untyped-def]
        self.clock.advance(seconds)

    @rule()
    def expire_job(self):  # type: ignore[no-untyped-def]
        now = self.clock.now()
        due = [m for m in self.model.values() if m.status == "held" and m.expires_at <= now]
        assert self.ledger.expire_due() == len(due)
        for m in due:
            m.status = "expired"

    # -- invariants ------------------------------------------------------------

    @invariant()
    def books_hold(self) -> None:
        now = self.clock.now()
        projection = projected_balances(self.engine)
        truth = balances_from_entries(self.engine)
        for key, value in projection.items():
            assert truth.get(key, (0, 0)) == value, key
        # The model agrees with the footprint buckets (every allowed line draws there).
        fp_committed = sum(v[0] for k, v in projection.items() if k[0] == "footprint")
        fp_held = sum(v[1] for k, v in projection.items() if k[0] == "footprint")
        assert fp_committed == sum(m.tpp for m in self.model.values() if m.status == "committed")
        assert fp_held == sum(m.tpp for m in self.model.values() if m.status == "held")
        # No capped bucket over its cap, counting only unexpired holds.
        expired = self._expired_held_by_bucket(now)
        for (kind, key, period), (committed, held) in projection.items():
            used = committed + held - expired.get((kind, key, period), 0)
            cap = {"lpp": LPP_CAP, "country_allocation": ALLOCATION_CAP}.get(kind)
            if kind == "license":
                cap = LICENSE_TPP[key]
            if cap is not None:
                assert used <= cap, (kind, key, used, cap)
        assert verify_chain(self.engine).ok

    def _expired_held_by_bucket(self, now: datetime) -> dict[tuple[str, str, str], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                # `now` bound with the column's own type, so SQLite compares the same
                # text format it stores (the driver's default adapter drops ".000000").
                sa.text(
                    "SELECT b.kind, b.key, b.period, SUM(a.tpp) FROM active_hold a "
                    "JOIN bucket b ON b.id = a.bucket_id WHERE a.expires_at <= :now "
                    "GROUP BY b.kind, b.key, b.period"
                ).bindparams(sa.bindparam("now", type_=UTCDateTime())),
                {"now": now},
            ).all()
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}

    def _entry_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT COUNT(*) FROM entry").scalar_one())


SETTINGS = settings(
    max_examples=12,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_stateful_sqlite(sqlite_template: Path) -> None:
    def make_url():  # type: ignore[no-untyped-def]
        folder = Path(tempfile.mkdtemp())
        shutil.copy(sqlite_template, folder / "l.db")
        return f"sqlite:///{folder / 'l.db'}", lambda: shutil.rmtree(folder)

    LedgerMachine.make_url = staticmethod(make_url)
    run_state_machine_as_test(LedgerMachine, settings=SETTINGS)


@pytest.mark.slow
def test_stateful_postgres(pg_template: str) -> None:
    admin = _admin_engine()

    def make_url():  # type: ignore[no-untyped-def]
        name = f"ledger_h_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')

        def drop() -> None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        url = sa.engine.make_url(POSTGRES_URL).set(database=name)
        return url.render_as_string(hide_password=False), drop

    LedgerMachine.make_url = staticmethod(make_url)
    try:
        run_state_machine_as_test(LedgerMachine, settings=SETTINGS)
    finally:
        admin.dispose()

