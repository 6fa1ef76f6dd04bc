"""Group commit: many concurrent commands, one database transaction, one fsync.

A durable commit costs an fsync, so a process that commits each request on
its own is capped near the disk's commit rate. Here callers from any thread
(or event loop) submit commands; one writer thread takes everything queued
(up to `max_batch`), lingers at most `max_wait` seconds for more when the
batch is small and the previous batch had more than one command, and runs
them through `Ledger.execute`: one transaction, each command checked
completely before it changes anything, decided and answered on its own. A
lone client never waits (its previous batch held only its own command); under
load batches grow by themselves because requests pile up while the previous
batch commits.

Guarantees: a caller's future resolves only after the transaction holding
its command committed (or with the error that stopped it); if the batch's
transaction fails for any reason but the database being down, each command
is retried alone, so one poisonous command cannot fail its neighbours.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

from ledger import metrics
from ledger.errors import InvalidInput, LedgerError, Unavailable
from ledger.service import Ledger, Result
from ledger.views import Command, ReserveCommand, ReserveOutcome

log = logging.getLogger(__name__)


@dataclass
class _Item:
    command: Command
    future: Future[Result]
    queued_at: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    batches: int = 0
    commands: int = 0
    largest: int = 0

    @property
    def mean(self) -> float:
        return self.commands / self.batches if self.batches else 0.0


class Committer(Protocol):
    """What the API writes through: this module's GroupCommitter (a thread of this
    process) or ledger.writer_process.RemoteCommitter (the writer process)."""

    def submit(self, command: Command) -> Future[Result]: ...

    def close(self, timeout: float = 10.0) -> None: ...


class GroupCommitter:
    def __init__(self, ledger: Ledger, max_batch: int = 256, max_wait: float = 0.002) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.stats = BatchStats()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._closed = False
        self._linger = True  # False once a batch held a lone command (no company to wait for)
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def submit(self, command: Command) -> Future[Result]:
        """Queues a command; the future holds its outcome or its LedgerError."""
        if self._closed:
            raise RuntimeError("group committer is closed")
        future: Future[Result] = Future()
        self._enqueue(_Item(command, future))
        return future

    def _enqueue(self, item: _Item) -> None:
        if self._closed:
            raise RuntimeError("group committer is closed")
        self._queue.put(item)

    def run(self, command: Command) -> Result:
        """Submits and waits; raises the command's LedgerError, returns its outcome."""
        result = self.submit(command).result()
        if isinstance(result, LedgerError):
            raise result
        return result

    def close(self, timeout: float = 10.0) -> None:
        """Finishes what is queued, then stops the writer thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout)

    # -- the writer thread ---------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = self._gather(first)
            self._execute(batch)
            if stop:
                return

    def _gather(self, first: _Item) -> tuple[list[_Item], bool]:
        batch = [first]
        # Linger for company only when the last batch had some: a lone client (the
        # last batch held one command) would only wait max_wait for nobody.
        deadline = time.monotonic() + (self.max_wait if self._linger else 0.0)
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if item is None:
                return batch, True
            batch.append(item)
        self._linger = len(batch) > 1
        return batch, False

    def _execute(self, batch: list[_Item]) -> None:
        commands = [item.command for item in batch]
        began = time.monotonic()
        metrics.GROUP_COMMIT_BATCH.observe(len(batch))
        for item in batch:
            metrics.GROUP_COMMIT_WAIT.observe(began - item.queued_at)
        try:
            results: list[Result] = self.ledger.execute(commands)
        except Unavailable as exc:
            self._deliver(batch, [exc] * len(batch))
            return
        except Exception:
            log.exception("group commit batch of %d failed; retrying each alone", len(batch))
            results = [self._execute_alone(item.command) for item in batch]
        metrics.GROUP_COMMIT_SECONDS.observe(time.monotonic() - began)
        self.stats.batches += 1
        self.stats.commands += len(batch)
        self.stats.largest = max(self.stats.largest, len(batch))
        self._deliver(batch, results)

    def _deliver(self, batch: list[_Item], results: list[Result]) -> None:
        """Answers each command of a batch whose transaction has committed (or failed).
        The writer process (ledger.writer_process) answers over its socket instead."""
        for item, result in zip(batch, results, strict=True):
            count_reservation(item.command, result)
        for item, result in zip(batch, results, strict=True):
            item.future.set_result(result)

    def _execute_alone(self, command: Command) -> Result:
        try:
            return self.ledger.execute([command])[0]
        except LedgerError as exc:
            return exc
        except Exception as exc:
            log.exception("command failed alone")
            return LedgerError(f"internal error: {type(exc).__name__}")


def count_reservation(command: Command, result: Result | LedgerError) -> None:
    """Reservations by outcome and path, denials by constraint (ledger.metrics). Counted
    where the answer is delivered: this process, or the HTTP process of a RemoteCommitter
    (ledger.writer_process), the one that serves /metrics."""
    if not isinstance(command, ReserveCommand):
        return
    if isinstance(result, ReserveOutcome):
        if result.reservation is not None:
            outcome = "replayed" if result.replayed else "held"
            path = metrics.reservation_path(line.path for line in result.reservation.lines)
            metrics.RESERVATIONS.labels(outcome, path).inc()
            return
        metrics.RESERVATIONS.labels("replayed" if result.replayed else "denied", "none").inc()
        if not result.replayed:
            for violation in result.violations:
                metrics.DENIALS.labels(violation.constraint).inc()
        return
    outcome = ("unavailable" if isinstance(result, Unavailable)
               else "invalid" if isinstance(result, InvalidInput) else "error")
    metrics.RESERVATIONS.labels(outcome, "none").inc()
