"""The embedded default (issue 9, defect 3): every job on SQLite, at once, with API writes.

`ledger serve` on SQLite runs the scheduler in the API process, on the API's own
Ledger and engine. Here the real scheduler (`jobs.runner.start_in_process`)
runs every job every second on a SQLite file while writer threads make
reservations through the group committer, as the API does, for
LEDGER_TEST_SCHEDULE_SECONDS (default 60). The lock contention is real:
every job and the group committer use their own SQLite connections to one file.
No job run may fail, no run may be left unfinished, APScheduler must
report no error, and every job must have run.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)

from jobs.registry import JOBS
from jobs.runner import start_in_process
from jobs.signing import create_signing_key
from ledger.clock import SystemClock
from ledger.errors import LedgerError
from ledger.group_commit import GroupCommitter
from ledger.policy.ruleset import RuleSet
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.engine import create_ledger_engine
from ledger.views import CommitCommand, ReleaseCommand, ReserveCommand
from tests.factories import consignee, line, operator

SECONDS = float(os.environ.get("LEDGER_TEST_SCHEDULE_SECONDS", "60"))
WRITERS = 4
CONSIGNEES = [f"sg-lab{i}" for i in range(40)]
LPP_CAP = 26_900_000


class Errors(logging.Handler):
    """Every ERROR record from any logger, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _writer(committer: GroupCommitter, seed: int, stop: threading.Event,
            counts: Counter[str], lock: threading.Lock, committed: list[str]) -> None:
    """Reserves 3-30 % of an LPP cap with 1-3 s holds; commits a few, releases some,
    lets the rest expire (work for expire_holds, threshold_alerts and shipments)."""
    rnd = random.Random(seed)
    n = 0
    while not stop.is_set():
        n += 1
        cmd = ReserveCommand(f"vendor{seed}", (line("SG", rnd.choice(CONSIGNEES),
                                                    tpp=LPP_CAP * rnd.randint(3, 30) // 100),),
                             rnd.randint(1, 3), f"k{seed}-{n}")
        outcome = committer.submit(cmd).result()
        if isinstance(outcome, LedgerError):
            with lock:
                counts["reserve_errors"] += 1
                counts[f"error:{type(outcome).__name__}: {outcome}"[:120]] += 1
            continue
        reservation = outcome.reservation  # type: ignore[union-attr]
        if reservation is None:
            with lock:
                counts["denied"] += 1
            continue
        rid = reservation.id
        with lock:
            counts["reserved"] += 1
        then = rnd.random()
        follow = (CommitCommand(f"vendor{seed}", rid) if then < 0.05
                  else ReleaseCommand(f"vendor{seed}", rid) if then < 0.4 else None)
        if follow is None:
            continue
        done = committer.submit(follow).result()
        with lock:
            if isinstance(done, LedgerError):
                # A hold that expired before its commit/release is a legal refusal.
                counts["follow_refused"] += 1
            else:
                counts["committed" if isinstance(follow, CommitCommand) else "released"] += 1
                if isinstance(follow, CommitCommand):
                    committed.append(rid)


def _feeds(inbox: Path, stop: threading.Event, committed: list[str],
           lock: threading.Lock) -> None:
    """Drops a shipment feed into the inbox every 3 s: some rows for committed
    reservations (shipped to the wrong place), one for an unknown reservation."""
    n = 0
    while not stop.wait(3):
        n += 1
        with lock:
            ids = committed[-5:]
        rows = [{"reservation_id": rid, "chip": "H100-SXM", "quantity": 1,
                 "ship_date": "2026-01-01", "destination": "KE", "consignee": "elsewhere"}
                for rid in ids]
        rows.append({"reservation_id": f"unknown-{n}", "chip": "H100-SXM", "quantity": 1,
                     "ship_date": "2026-01-01", "destination": "SG", "consignee": "sg-lab0"})
        tmp = inbox / f".feed-{n}.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.rename(inbox / f"feed-{n}.jsonl")


@pytest.mark.slow
def test_every_job_every_second_on_sqlite_with_concurrent_reservations(
    sqlite_url: str, tmp_path: Path, rule_set: RuleSet
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    key_path = tmp_path / "signing.pem"
    create_signing_key(key_path)
    settings = Settings(
        database_url=sqlite_url, redis_url=None, jobs_intervals=dict.fromkeys(JOBS, 1),
        signing_key_path=str(key_path), shipment_inbox=str(inbox),
        shipment_deadline_days=0, reconcile_repair=True,
    )
    # One engine and one Ledger for the API side and the jobs, as `ledger serve` has.
    engine = create_ledger_engine(sqlite_url)
    ledger = Ledger(engine, rule_set, SystemClock())
    operator(ledger, "op1", hq="SG")
    for c in CONSIGNEES:
        consignee(ledger, c, "SG")

    errors = Errors()
    logging.getLogger().addHandler(errors)
    events: Counter[str] = Counter()
    names = {EVENT_JOB_EXECUTED: "executed", EVENT_JOB_ERROR: "error",
             EVENT_JOB_MISSED: "missed", EVENT_JOB_MAX_INSTANCES: "max_instances"}

    def listen(event: JobExecutionEvent) -> None:
        events[names[event.code]] += 1

    committer = GroupCommitter(ledger)
    counts: Counter[str] = Counter()
    lock = threading.Lock()
    committed: list[str] = []
    stop = threading.Event()
    handle = start_in_process(ledger, settings)
    handle.scheduler.add_listener(listen, sum(names))
    threads = [threading.Thread(target=_writer, args=(committer, i, stop, counts, lock,
                                                       committed), daemon=True)
               for i in range(WRITERS)]
    threads.append(threading.Thread(target=_feeds, args=(inbox, stop, committed, lock),
                                    daemon=True))
    started = time.monotonic()
    try:
        for t in threads:
            t.start()
        time.sleep(SECONDS)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        handle.shutdown(wait=True)
        committer.close()
        logging.getLogger().removeHandler(errors)
    elapsed = time.monotonic() - started

    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT job, outcome, figures FROM job_run")).all()
        tally = {name: int(conn.execute(sa.text(sql)).scalar_one()) for name, sql in {
            "entries": "SELECT count(*) FROM entry",
            "expire_entries": "SELECT count(*) FROM entry WHERE kind = 'expire'",
            "verified_checkpoints": "SELECT count(*) FROM chain_checkpoint WHERE kind='verified'",
            "signed_checkpoints": "SELECT count(*) FROM chain_checkpoint WHERE kind = 'signed'",
            "alerts": "SELECT count(*) FROM alert",
            "findings": "SELECT count(*) FROM finding",
            "shipment_imports": "SELECT count(*) FROM shipment_import",
        }.items()}
    engine.dispose()
    per_job = Counter(r.job for r in runs)
    outcomes = Counter(r.outcome for r in runs)
    failed = [(r.job, r.figures) for r in runs if r.outcome == "failed"]
    figures = {
        "seconds": round(elapsed, 1),
        "runs": len(runs), "runs_per_job": dict(sorted(per_job.items())),
        "outcomes": dict(outcomes), "failed": len(failed),
        "scheduler_events": dict(events), "error_logs": len(errors.records),
        "reservations": dict(counts), **tally,
    }
    print(f"\nSQLite schedule, every job every 1 s + {WRITERS} reservation writers: {figures}")
    assert not failed, failed[:5]
    assert outcomes["running"] == 0, figures  # every run finished and was recorded
    assert events["error"] == 0, figures
    assert not errors.records, [r.getMessage() for r in errors.records[:5]]
    assert set(per_job) == set(JOBS), figures  # every job ran
    assert counts["reserved"] > 0 and counts["reserve_errors"] == 0, figures
    # The write paths were really taken under contention, not skipped.
    assert tally["expire_entries"] and tally["verified_checkpoints"], figures
    assert tally["signed_checkpoints"] and tally["alerts"], figures
    assert tally["findings"] and tally["shipment_imports"], figures
