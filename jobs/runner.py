"""Running jobs: one period at a time, under a leader lock, recorded in `job_run`.

Scheduler choices (APScheduler 3.x BackgroundScheduler), made on purpose:
- triggers are epoch-aligned intervals, so every scheduler fires at the same
  instants and computes the same period name; the (job, period) row decides
  who runs it;
- `coalesce=True`: after a pause (suspended VM, long GC, a slow run) the
  missed fire times of one job collapse into ONE run. Every job here catches
  up with the whole backlog by itself (expire all due holds, check the
  whole chain since the checkpoint, ...), so replaying each missed period
  would only repeat the same work;
- `misfire_grace_time` = the job's interval: a run that starts late but
  within its own period still runs (APScheduler's default of 1 s would
  silently drop it); later than that, the next period's run covers it;
- `max_instances=1`: a run never overlaps the previous run of the same job
  in one process; across processes the leader lock does that.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from jobs.context import JobContext, JobResult
from jobs.leader import LockFactory
from jobs.records import claim, finish, period_of
from jobs.registry import JOBS, intervals
from ledger.service import Ledger
from ledger.settings import Settings

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class JobBusy(Exception):
    """Another runner holds this job's leader lock right now."""


class JobRunner:
    """Runs jobs for one process; thread-safe (the scheduler calls it from a pool)."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings
        self.intervals = intervals(settings)
        self.locks = LockFactory(ledger.engine, settings.redis_url, settings.jobs_lock_prefix,
                                 settings.jobs_lock_ttl_seconds)
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.stats: Counter[str] = Counter()  # ran / lock_busy / already_ran, for tests and logs
        self._stats_lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self._stats_lock:
            self.stats[what] += 1

    def run_period(self, name: str) -> int | None:
        """The scheduled entry point: runs `name` for the current period unless another
        runner holds its lock or already ran that period. Never raises."""
        try:
            period = period_of(self.ledger.clock.now(), self.intervals[name])
            return self._run(name, period, {})[0]
        except JobBusy:
            self._count("lock_busy")
        except Exception:
            log.exception("job %s could not run", name)
        return None

    def run_now(self, name: str, options: dict[str, Any] | None = None
                ) -> tuple[int | None, JobResult]:
        """A manual run (CLI): its own period "manual:<time>", so it never takes a
        scheduled period. Raises JobBusy when the job is running elsewhere."""
        now = self.ledger.clock.now()
        period = f"manual:{now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}:{secrets.token_hex(2)}"
        return self._run(name, period, options or {})

    def _run(self, name: str, period: str, options: dict[str, Any]
             ) -> tuple[int | None, JobResult]:
        spec = JOBS[name]
        lock = self.locks.for_job(name)
        if not lock.acquire():
            raise JobBusy(name)
        try:
            engine = self.ledger.engine
            run_id = claim(engine, name, period, self.runner_id, self.ledger.clock.now())
            if run_id is None:
                self._count("already_ran")
                return None, JobResult.skipped(f"{name} {period} already ran")
            ctx = JobContext(self.ledger, self.settings, run_id, period, heartbeat=lock.renew,
                             options=options)
            try:
                result = spec.run(ctx)
            except Exception as exc:
                log.exception("job %s %s failed", name, period)
                result = JobResult.failed(error=f"{type(exc).__name__}: {exc}"[:500])
            finish(engine, run_id, result.outcome, result.figures, self.ledger.clock.now())
            self._count("ran")
            return run_id, result
        finally:
            try:
                lock.release()
            except Exception:  # an expired lock frees itself; the run is recorded anyway
                log.warning("could not release the %s lock", name, exc_info=True)

    def scheduler(self) -> BackgroundScheduler:
        sched = BackgroundScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(max_workers=4)})
        for name, every in self.intervals.items():
            sched.add_job(
                self.run_period, IntervalTrigger(seconds=every, start_date=EPOCH, timezone=UTC),
                args=[name], id=name, name=name,
                coalesce=True, misfire_grace_time=every, max_instances=1,
            )
        return sched


@dataclass
class JobsHandle:
    """What `start_in_process` returns: call `shutdown()` when the host stops."""

    runner: JobRunner
    scheduler: BackgroundScheduler

    def shutdown(self, wait: bool = True) -> None:
        self.scheduler.shutdown(wait=wait)
        self.runner.locks.close()


def start_in_process(ledger: Ledger, settings: Settings) -> JobsHandle:
    """Starts the scheduler in background threads of this process (the API's lifespan
    calls this on the embedded default; production runs `ledger jobs` instead)."""
    runner = JobRunner(ledger, settings)
    sched = runner.scheduler()
    sched.start()
    log.info("jobs scheduler started in-process (%s lock)", runner.locks.kind)
    return JobsHandle(runner, sched)


def run_forever(ledger: Ledger, settings: Settings) -> None:
    """`ledger jobs`: runs the scheduler until SIGINT / SIGTERM, then stops cleanly."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    handle = start_in_process(ledger, settings)
    try:
        for name, every in handle.runner.intervals.items():
            print(f"scheduled {name} every {every}s", flush=True)
        print(f"leader lock: {handle.runner.locks.kind}; Ctrl-C to stop", flush=True)
        stop.wait()
    finally:
        handle.shutdown()
