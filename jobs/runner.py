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
  in one process; across processes the leader lock does that;
- a failed run (the job raised or returned `failed`, or could not start or
  be recorded) is logged at ERROR with the job, period and reason, recorded
  as `failed` in `job_run`, and raised to APScheduler as JobFailed, so its
  log says "raised an exception", never "executed successfully".
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from jobs.context import JobContext, JobResult
from jobs.leader import LockFactory
from jobs.records import claim, finish, period_of, record_failed
from jobs.registry import JOBS, intervals
from ledger import metrics
from ledger.service import Ledger
from ledger.settings import Settings

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class JobBusy(Exception):
    """Another runner holds this job's leader lock right now."""


class JobFailed(Exception):
    """A scheduled run failed. Raised to APScheduler (after the run is logged and
    recorded) so that it reports the run as an error, never as executed successfully."""


def failure_reason(figures: dict[str, Any]) -> str:
    """One line saying why a run failed, from its figures."""
    for key in ("error", "reason", "errors"):
        if figures.get(key):
            return str(figures[key])[:500]
    return str(figures)[:500]


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class JobRunner:
    """Runs jobs for one process; thread-safe (the scheduler calls it from a pool)."""

    def __init__(self, ledger: Ledger, settings: Settings) -> None:
        self.ledger = ledger
        self.settings = settings
        self.intervals = intervals(settings)
        self.locks = LockFactory(ledger.engine, settings.redis_url, settings.jobs_lock_prefix,
                                 settings.jobs_lock_ttl_seconds)
        self.runner_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        # ran / failed / lock_busy / already_ran, for tests and logs
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self._stats_lock:
            self.stats[what] += 1

    def run_period(self, name: str) -> int | None:
        """The scheduled entry point: runs `name` for the current period unless another
        runner holds its lock or already ran that period (None). A failed run is
        logged at ERROR, recorded as `failed`, and raised as JobFailed, so that
        APScheduler reports it as an error (EVENT_JOB_ERROR), not as a success."""
        try:
            period = period_of(self.ledger.clock.now(), self.intervals[name])
            run_id, result = self._run(name, period, {})
        except JobBusy:
            self._count("lock_busy")
            return None
        except Exception as exc:  # _run records its failures; this is anything else
            log.exception("job %s could not run: %s", name, _error(exc))
            raise JobFailed(f"{name}: {_error(exc)}") from exc
        if result.outcome == "failed":
            raise JobFailed(f"{name} {period} failed: {failure_reason(result.figures)}")
        return run_id

    def run_now(self, name: str, options: dict[str, Any] | None = None
                ) -> tuple[int | None, JobResult]:
        """A manual run (CLI): its own period "manual:<time>", so it never takes a
        scheduled period. Raises JobBusy when the job is running elsewhere; a
        failed run is returned (outcome `failed`), logged and recorded."""
        now = self.ledger.clock.now()
        period = f"manual:{now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}:{secrets.token_hex(2)}"
        return self._run(name, period, options or {})

    def _failed(self, name: str, period: str, result: JobResult,
                exc: BaseException | None = None) -> None:
        self._count("failed")
        log.error("job %s %s failed: %s", name, period, failure_reason(result.figures),
                  exc_info=exc)

    def _run(self, name: str, period: str, options: dict[str, Any]
             ) -> tuple[int | None, JobResult]:
        began = time.monotonic()
        try:
            run_id, result = self._run_locked(name, period, options)
        except JobBusy:
            raise
        except Exception:
            metrics.JOB_RUNS.labels(name, "failed").inc()
            raise
        metrics.JOB_RUNS.labels(name, result.outcome).inc()
        metrics.JOB_SECONDS.labels(name).observe(time.monotonic() - began)
        return run_id, result

    def _run_locked(self, name: str, period: str, options: dict[str, Any]
                    ) -> tuple[int | None, JobResult]:
        spec = JOBS[name]
        engine = self.ledger.engine
        lock = self.locks.for_job(name)
        held = False
        try:
            try:
                held = lock.acquire()
                if not held:
                    raise JobBusy(name)
                run_id = claim(engine, name, period, self.runner_id, self.ledger.clock.now())
            except JobBusy:
                raise
            except Exception as exc:
                # Could not even start (lock store or database unavailable): still a run
                # that failed, logged and recorded as such (if the database allows).
                result = JobResult.failed(error=f"could not start: {_error(exc)}")
                self._failed(name, period, result, exc)
                return self._record_failed(name, period, result), result
            if run_id is None:
                self._count("already_ran")
                return None, JobResult.skipped(f"{name} {period} already ran")
            ctx = JobContext(self.ledger, self.settings, run_id, period, heartbeat=lock.renew,
                             options=options)
            failure: BaseException | None = None
            try:
                result = spec.run(ctx)
            except Exception as exc:
                failure = exc
                result = JobResult.failed(error=_error(exc))
            if result.outcome == "failed":
                self._failed(name, period, result, failure)
            self._finish(name, period, run_id, result)
            self._count("ran")
            return run_id, result
        finally:
            if held:
                try:
                    lock.release()
                except Exception:  # an expired lock frees itself; the run is recorded anyway
                    log.warning("could not release the %s lock", name, exc_info=True)

    def _finish(self, name: str, period: str, run_id: int, result: JobResult) -> None:
        """Records the outcome; if that fails, the run is a failure (and said so)."""
        try:
            finish(self.ledger.engine, run_id, result.outcome, result.figures,
                   self.ledger.clock.now())
            return
        except Exception as exc:
            error = f"could not record the outcome {result.outcome!r}: {_error(exc)}"
            outcome = result.outcome
            result.outcome = "failed"
            result.figures = {**result.figures, "error": error}
            if outcome != "failed":
                self._failed(name, period, result, exc)
        try:  # once more, as failed (the database may be back)
            finish(self.ledger.engine, run_id, "failed", result.figures, self.ledger.clock.now())
        except Exception:
            log.error("job %s %s: run %s could not be recorded as failed; it stays 'running'",
                      name, period, run_id, exc_info=True)

    def _record_failed(self, name: str, period: str, result: JobResult) -> int | None:
        try:
            return record_failed(self.ledger.engine, name, period, self.runner_id,
                                 self.ledger.clock.now(), result.figures)
        except Exception:
            log.error("job %s %s: the failed run could not be recorded", name, period,
                      exc_info=True)
            return None

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
