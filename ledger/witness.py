"""Witnesses: copies of the signed heads where the database's operators cannot rewrite them.

- File (`LEDGER_WITNESS_FILE`): append-only, one JSON line per signed head
  (`{"at","hash","key_id","root","seq","signature"}`, keys sorted). A background
  thread takes every head queued since its last write, appends them in one
  write, and fsyncs; the write path only puts the head on a queue and never
  waits for the disk. Lag: a head reaches the disk one write + fsync after its
  commit (milliseconds on a local disk; under load several heads share one
  fsync). A crash can lose the heads of that last moment from the file (they
  are still in the database and at the webhooks); a torn last line is ignored
  by readers. Put the file on storage the database's operators cannot rewrite
  (another host, WORM storage, a log shipper).
- Webhooks (`LEDGER_WITNESS_WEBHOOKS`, comma-separated URLs): each URL gets the
  latest head as JSON (POST). Heads are cumulative (a head covers every entry
  before it), so a receiver that was down gets only the newest one when it
  comes back: a thread per URL coalesces to the latest head and retries with
  exponential backoff (0.5 s doubling to 30 s) until a 2xx answer.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
from typing import TYPE_CHECKING

from ledger.heads import SignedHead

if TYPE_CHECKING:
    from ledger.settings import Settings

log = logging.getLogger(__name__)
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
TIMEOUT_SECONDS = 5.0


class FileWitness:
    def __init__(self, path: str) -> None:
        self.path = path
        self._queue: queue.Queue[SignedHead | None] = queue.Queue()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._written = threading.Condition()
        self.last_written = 0  # seq of the last head fsynced
        self._thread = threading.Thread(target=self._run, name="witness-file", daemon=True)
        self._thread.start()

    def publish(self, head: SignedHead) -> None:
        self._queue.put(head)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            heads = [h for h in batch if h is not None]
            if heads:
                data = b"".join(h.line() for h in heads)
                try:
                    os.write(self._fd, data)
                    os.fsync(self._fd)
                except OSError:
                    log.exception("witness file %s: write failed", self.path)
                with self._written:
                    self.last_written = max(self.last_written, max(h.seq for h in heads))
                    self._written.notify_all()
            if None in batch:
                return

    def wait(self, seq: int, timeout: float = 5.0) -> bool:
        """Waits until the head at `seq` (or a later one) is on disk (tests, shutdown)."""
        with self._written:
            return self._written.wait_for(lambda: self.last_written >= seq, timeout)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(10)
        with contextlib.suppress(OSError):
            os.close(self._fd)


class WebhookWitness:
    def __init__(self, url: str) -> None:
        self.url = url
        self._latest: SignedHead | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.delivered = 0  # seq of the last head a 2xx answer acknowledged
        self._thread = threading.Thread(target=self._run, name="witness-webhook", daemon=True)
        self._thread.start()

    def publish(self, head: SignedHead) -> None:
        with self._cond:
            if self._latest is None or head.seq > self._latest.seq:
                self._latest = head
                self._cond.notify_all()

    def _run(self) -> None:
        import httpx

        delay = BACKOFF_START
        with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or (
                        self._latest is not None and self._latest.seq > self.delivered))
                    if self._closed:
                        return
                    head = self._latest
                assert head is not None
                try:
                    response = client.post(self.url, json=head.doc(), headers={
                        "Idempotency-Key": f"head-{head.seq}-{head.hash[:16]}"})
                    ok = 200 <= response.status_code < 300
                except httpx.HTTPError:
                    ok = False
                if ok:
                    with self._cond:
                        self.delivered = max(self.delivered, head.seq)
                        self._cond.notify_all()
                    delay = BACKOFF_START
                    continue
                log.warning("witness webhook %s: head %d not accepted; retrying in %.1f s",
                            self.url, head.seq, delay)
                with self._cond:
                    self._cond.wait_for(lambda: self._closed, delay)
                    if self._closed:
                        return
                delay = min(delay * 2, BACKOFF_MAX)

    def wait(self, seq: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.delivered >= seq, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(10)


class WitnessPublisher:
    def __init__(self, file: str | None, webhooks: list[str]) -> None:
        self.file = FileWitness(file) if file else None
        self.webhooks = [WebhookWitness(url) for url in webhooks]

    def publish(self, head: SignedHead) -> None:
        """Never blocks: queues for the file thread, hands the latest to each webhook."""
        if self.file is not None:
            self.file.publish(head)
        for hook in self.webhooks:
            hook.publish(head)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        for hook in self.webhooks:
            hook.close()


_PUBLISHERS: dict[tuple[str | None, tuple[str, ...]], WitnessPublisher] = {}
_LOCK = threading.Lock()


def witness_publisher(settings: Settings) -> WitnessPublisher | None:
    """The process's publisher for these witnesses (one per file and URL set, so several
    ledgers in one process share its threads); None when no witness is configured."""
    urls = tuple(u.strip() for u in (settings.witness_webhooks or "").split(",") if u.strip())
    if not settings.witness_file and not urls:
        return None
    key = (settings.witness_file, urls)
    with _LOCK:
        publisher = _PUBLISHERS.get(key)
        if publisher is None:
            publisher = _PUBLISHERS[key] = WitnessPublisher(settings.witness_file, list(urls))
        return publisher


@atexit.register
def _close_all() -> None:
    for publisher in list(_PUBLISHERS.values()):
        publisher.close()
