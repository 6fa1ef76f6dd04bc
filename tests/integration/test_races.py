"""Many writers, one bucket: the accepted total never exceeds the cap and equals
the balance. Real PostgreSQL with threads; real SQLite with processes."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from ledger.audit import balances_from_entries, projected_balances, verify_chain
from ledger.clock import SystemClock
from ledger.policy.ruleset import load_rule_set
from ledger.service import Ledger
from ledger.store.engine import create_ledger_engine
from tests.factories import consignee, line, operator, reserve
from tests.integration.race_worker import hammer

LPP_CAP = 26_900_000
LPP_KEY_PREFIX = ("lpp", "consignee:sg-lab")


def _seed(ledger: Ledger) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")


def _lpp_balance(ledger: Ledger) -> tuple[int, int]:
    rows = [v for k, v in projected_balances(ledger.engine).items() if k[:2] == LPP_KEY_PREFIX]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.slow
def test_postgres_race_32_workers_2000_attempts(pg_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    engine = create_ledger_engine(pg_url, pool_size=32, max_overflow=0)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"), SystemClock())
    _seed(ledger)
    tpp, attempts, workers = 15_832, 2000, 32

    def attempt(i: int) -> int:
        out = reserve(ledger, line("SG", "sg-lab", tpp=tpp), key=f"k{i}", hold_seconds=86400)
        return tpp if out.held else 0

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        accepted = list(pool.map(attempt, range(attempts)))
    elapsed = time.perf_counter() - started

    total = sum(accepted)
    assert total <= LPP_CAP
    assert total == (LPP_CAP // tpp) * tpp  # the bucket fills exactly, no lost holds
    assert _lpp_balance(ledger) == (0, total)
    key = next(k for k in projected_balances(engine) if k[:2] == LPP_KEY_PREFIX)
    assert balances_from_entries(engine)[key] == (0, total)
    assert verify_chain(engine).entries == total // tpp
    with capsys.disabled():
        print(
            f"\n[race postgres] workers={workers} attempts={attempts} "
            f"accepted={total // tpp} accepted_tpp={total} cap={LPP_CAP} "
            f"time={elapsed:.2f}s"
        )
    engine.dispose()


@pytest.mark.slow
def test_sqlite_race_4_processes(sqlite_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    engine = create_ledger_engine(sqlite_url)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"), SystemClock())
    _seed(ledger)
    tpp, processes, per_process = 56_000, 4, 250

    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        results = list(
            pool.map(hammer, [sqlite_url] * processes, [per_process] * processes,
                     [tpp] * processes, range(processes))
        )
    elapsed = time.perf_counter() - started

    accepted = sum(r[0] for r in results)
    total = sum(r[1] for r in results)
    assert total <= LPP_CAP
    assert accepted == LPP_CAP // tpp  # 480 of 1,000 fit
    assert _lpp_balance(ledger) == (0, total)
    assert verify_chain(engine).entries == accepted
    with capsys.disabled():
        print(
            f"\n[race sqlite] processes={processes} attempts={processes * per_process} "
            f"accepted={accepted} accepted_tpp={total} cap={LPP_CAP} time={elapsed:.2f}s"
        )
    engine.dispose()
