"""Jobs on SQLite take the write lock up front; a failed run is reported as failed.

SQLite cannot upgrade a deferred transaction's read snapshot to a write once
another connection has committed since it was taken (or holds the write lock):
it answers "database is locked" at once, without waiting out the busy timeout.
That is what made jobs fail on `ledger serve` whenever several fired together.
Here every read a job makes is followed, deterministically, by another
connection committing a write (as the API or another job would); a job whose
write transactions begin with BEGIN IMMEDIATE already holds the lock, so
that other write is refused instead, and the job carries on.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent

from jobs.context import JobContext, JobResult
from jobs.registry import JOBS, JobSpec
from jobs.runner import JobRunner
from jobs.signing import create_signing_key
from ledger.clock import ManualClock
from ledger.policy.ruleset import RuleSet
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.engine import create_ledger_engine
from tests.conftest import START
from tests.factories import consignee, line, operator, reserve

LPP_CAP = 26_900_000


class Interferer:
    """After the first SELECT of every transaction on `engine`, another connection
    commits a write if it can get the write lock at once."""

    def __init__(self, engine: sa.Engine, path: str) -> None:
        self.other = sqlite3.connect(path, timeout=0, isolation_level=None)
        self.other.execute("CREATE TABLE IF NOT EXISTS interference (n INTEGER)")
        self.committed = self.refused = 0
        sa.event.listen(engine, "begin", self._begin)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _begin(self, conn: sa.Connection) -> None:
        conn.info["interfered"] = False

    def _after(self, conn: sa.Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if conn.info.get("interfered", True) or not statement.lstrip().upper().startswith(
                "SELECT"):
            return
        conn.info["interfered"] = True
        try:
            self.other.execute("INSERT INTO interference VALUES (1)")
            self.committed += 1
        except sqlite3.OperationalError:  # the job holds the write lock: as it should
            self.refused += 1


@pytest.fixture
def sqlite_ledger(sqlite_url: str, rule_set: RuleSet) -> Iterator[Ledger]:
    engine = create_ledger_engine(sqlite_url)
    yield Ledger(engine, rule_set, ManualClock(START))
    engine.dispose()


def _books_with_work_for_every_job(ledger: Ledger) -> None:
    """An LPP bucket past 80 % (alert), a committed reservation never shipped
    (not_shipped with a 0-day deadline), a drifted bucket row (reconcile), a hold
    due for expiry once the clock moves 5 s, and entries to verify and sign."""
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    consignee(ledger, "sg-lab2", "SG")
    reserve(ledger, line("SG", "sg-lab", tpp=LPP_CAP * 85 // 100))
    done = reserve(ledger, line("SG", "sg-lab2", tpp=1000)).reservation
    ledger.commit(done.id, "vendor1")
    reserve(ledger, line("SG", "sg-lab2", tpp=1000), hold_seconds=1)  # due for expiry
    with ledger.write_engine.begin() as conn:  # drift the projection (not the entries)
        conn.execute(sa.text("UPDATE bucket SET held = held + 7 WHERE key = 'consignee:sg-lab2'"))


@pytest.mark.parametrize(("job", "options"), [
    ("verify_chain", {}), ("sign_checkpoint", {}), ("threshold_alerts", {}), ("reconcile", {}),
    ("reconcile", {"repair": True}), ("shipments", {}), ("expire_holds", {}),
], ids=lambda v: v if isinstance(v, str) else ",".join(v) or "-")
def test_a_job_never_fails_on_the_lock_when_others_write_between_its_reads(
    sqlite_ledger: Ledger, sqlite_url: str, tmp_path: Path, job: str, options: dict[str, Any]
) -> None:
    ledger = sqlite_ledger
    _books_with_work_for_every_job(ledger)
    key = tmp_path / "signing.pem"
    create_signing_key(key)
    settings = Settings(database_url=sqlite_url, redis_url=None, signing_key_path=str(key),
                        shipment_deadline_days=0)
    ledger.clock.advance(5)  # type: ignore[attr-defined]
    interferer = Interferer(ledger.engine, sqlite_url.removeprefix("sqlite:///"))
    run_id, result = JobRunner(ledger, settings).run_now(job, options)
    print(f"\n{job}: {result.outcome} {result.figures}; other writes committed "
          f"{interferer.committed}, refused {interferer.refused}")
    assert result.outcome == "ok", result.figures
    # The job really had something to write, so the write path was taken.
    wrote = {"verify_chain": "head_seq", "sign_checkpoint": "signed", "threshold_alerts": "raised",
             "reconcile": "drift", "shipments": "not_shipped_new", "expire_holds": "expired"}[job]
    assert result.figures[wrote], result.figures
    if options.get("repair"):
        assert result.figures["repaired"] == 1, result.figures
    with ledger.engine.connect() as conn:
        outcome = conn.execute(sa.text("SELECT outcome FROM job_run WHERE id = :i"),
                               {"i": run_id}).scalar_one()
    assert outcome == "ok"


# -- a failed run is a failure, to the log, the records and APScheduler ----------------------

def _raises(ctx: JobContext) -> JobResult:
    raise RuntimeError("disk on fire")


def _returns_failed(ctx: JobContext) -> JobResult:
    return JobResult.failed(reason="chain broken at seq 7")


def _scheduled_once(runner: JobRunner, name: str) -> list[JobExecutionEvent]:
    """Runs the real scheduler with only `name`, fired now; the APScheduler events."""
    sched = runner.scheduler()
    for other in JOBS:
        if other != name:
            sched.remove_job(other)
    events: list[JobExecutionEvent] = []
    sched.add_listener(events.append, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    sched.start()
    try:
        sched.modify_job(name, next_run_time=datetime.now(UTC))
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sched.shutdown(wait=True)
    return events


def _runs(ledger: Ledger) -> list[Any]:
    with ledger.engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT job, outcome, figures, finished_at FROM job_run")).all())


@pytest.mark.parametrize(("job", "reason"), [(_raises, "RuntimeError: disk on fire"),
                                             (_returns_failed, "chain broken at seq 7")],
                         ids=["raises", "returns-failed"])
def test_a_failed_scheduled_run_is_logged_recorded_and_reported_as_failed(
    sqlite_ledger: Ledger, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, job: Any, reason: str
) -> None:
    monkeypatch.setitem(JOBS, "verify_chain", JobSpec("verify_chain", job, 1, "test"))
    runner = JobRunner(sqlite_ledger, Settings(database_url=sqlite_url, redis_url=None))
    with caplog.at_level(logging.ERROR):
        events = _scheduled_once(runner, "verify_chain")
    assert [e.code for e in events] == [EVENT_JOB_ERROR], "APScheduler reported success"
    assert reason in str(events[0].exception)
    ours = [r for r in caplog.records if r.name == "jobs.runner"]
    assert ours and ours[0].levelno == logging.ERROR
    assert "verify_chain" in ours[0].getMessage() and reason in ours[0].getMessage()
    [run] = _runs(sqlite_ledger)
    assert run.outcome == "failed" and run.finished_at is not None
    assert reason in str(run.figures)


def test_a_run_that_cannot_start_is_logged_and_recorded_as_failed(
    sqlite_ledger: Ledger, sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    def locked(*_: Any, **__: Any) -> int:
        raise sa.exc.OperationalError("INSERT INTO job_run ...", {},
                                      sqlite3.OperationalError("database is locked"))

    monkeypatch.setattr("jobs.runner.claim", locked)
    runner = JobRunner(sqlite_ledger, Settings(database_url=sqlite_url, redis_url=None))
    with caplog.at_level(logging.ERROR):
        events = _scheduled_once(runner, "expire_holds")
    assert [e.code for e in events] == [EVENT_JOB_ERROR], "APScheduler reported success"
    assert "database is locked" in str(events[0].exception)
    assert any(r.name == "jobs.runner" and "expire_holds" in r.getMessage()
               and "database is locked" in r.getMessage() for r in caplog.records)
    [run] = _runs(sqlite_ledger)
    assert run.job == "expire_holds" and run.outcome == "failed"
    assert "could not start" in str(run.figures) and "database is locked" in str(run.figures)
