"""The writer process: group commit outside the HTTP processes' GIL (PostgreSQL only).

`ledger serve --writer-process` starts one `ledger writer --socket PATH` before
uvicorn. It opens the ledger like the API does (same settings, same head signer)
and runs one GroupCommitter; every HTTP worker holds one connection to it (a
RemoteCommitter: the same `submit(command) -> Future` as GroupCommitter), so the
writer batches across all workers. The chain's single lock serialises writes
anyway: one writer per database loses nothing.

Protocol: frames of a 4-byte big-endian length and a pickle.
  client -> writer: (request id, command)
  writer -> client: (changed bucket keys, batch size, batch began (time.monotonic, one
                    clock for all processes on Linux), transaction seconds,
                    [(request id, result), ...])  once per batch, after it committed
Every connected client hears every batch's changed keys (with no results when
none of its commands were in it), so each process's headroom cache drops what
any worker changed. Pickle is safe here only because both ends are our own
processes: the socket lives in a directory only this user can open (0700,
tempfile.mkdtemp), and nothing else ever connects to it.

Guarantees kept from GroupCommitter: a future resolves only after the
transaction holding its command committed; the client calls its on_commit
listeners (the headroom cache) with the batch's changed keys and counts the
reservation metrics (in the process that serves /metrics) before resolving any
future of that batch. If the connection drops or the writer dies, every pending
future resolves to Unavailable: an unknown outcome, like a timeout (the client
retries with its idempotency key); the next submit reconnects.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger import metrics
from ledger.errors import LedgerError, OutcomeUnknown, Unavailable
from ledger.group_commit import BatchStats, GroupCommitter, _Item, count_reservation
from ledger.policy.types import BucketKey
from ledger.service import CommitListener, Ledger, Result, notify_commit
from ledger.views import Command

log = logging.getLogger(__name__)

SOCKET_ENV = "LEDGER_WRITER_SOCKET"
_HEADER = struct.Struct(">I")


# -- framing --------------------------------------------------------------------


def _send(sock: socket.socket, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket) -> Any:
    """One message, or None at end of stream."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(sock, _HEADER.unpack(header)[0])
    if body is None:
        return None
    return pickle.loads(body)  # noqa: S301 - our own processes only (module docstring)


# -- the writer side -------------------------------------------------------------


@dataclass
class _Peer:
    sock: socket.socket
    lock: threading.Lock
    alive: bool = True

    def send(self, message: Any) -> None:
        if not self.alive:
            return
        try:
            with self.lock:
                _send(self.sock, message)
        except OSError:  # the HTTP process went away; its answers have nobody to go to
            self.alive = False


@dataclass
class _RemoteItem(_Item):
    peer: _Peer | None = None
    request_id: int = 0


class _SocketCommitter(GroupCommitter):
    """A GroupCommitter that answers each batch over the peers' sockets."""

    def __init__(self, ledger: Ledger, **kwargs: Any) -> None:
        self._changed: set[BucketKey] = set()
        self._began = 0.0
        self.peers: list[_Peer] = []
        self.peers_lock = threading.Lock()
        # Runs in the writer thread, inside execute: the keys of the batch being committed.
        ledger.on_commit(lambda keys: self._changed.update(keys))
        super().__init__(ledger, **kwargs)

    def _execute(self, batch: list[_Item]) -> None:
        self._began = time.monotonic()
        super()._execute(batch)

    def _deliver(self, batch: list[_Item], results: list[Result]) -> None:
        seconds = time.monotonic() - self._began
        changed, self._changed = self._changed, set()
        answers: dict[int, list[tuple[int, Result]]] = {}
        for item, result in zip(batch, results, strict=True):
            assert isinstance(item, _RemoteItem) and item.peer is not None
            answers.setdefault(id(item.peer), []).append((item.request_id, result))
        with self.peers_lock:
            self.peers = [p for p in self.peers if p.alive]
            peers = list(self.peers)
        for peer in peers:
            mine = answers.get(id(peer), [])
            if mine or changed:
                peer.send((changed, len(batch), self._began, seconds, mine))

    def serve_peer(self, peer: _Peer) -> None:
        """Reads one connection's commands into the queue until it closes."""
        try:
            while True:
                message = _recv(peer.sock)
                if message is None:
                    break
                request_id, command = message
                self._enqueue(_RemoteItem(command, Future(), peer=peer, request_id=request_id))
        except (OSError, EOFError, pickle.UnpicklingError):
            log.warning("writer: a connection broke", exc_info=True)
        except RuntimeError:  # closing
            pass
        finally:
            peer.alive = False
            with contextlib.suppress(OSError):
                peer.sock.close()


def run_writer(socket_path: str, ledger: Ledger, *, max_batch: int = 256,
               max_wait: float = 0.002, stop: threading.Event | None = None) -> None:
    """Serves the socket until SIGTERM (or `stop`), then finishes what is queued."""
    stop = stop or threading.Event()
    committer = _SocketCommitter(ledger, max_batch=max_batch, max_wait=max_wait)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)  # a previous writer's, killed before it could clean up
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    os.chmod(socket_path, 0o600)
    server.listen(64)
    server.settimeout(0.2)
    parent = os.getppid()
    log.info("writer listening on %s", socket_path)
    try:
        while not stop.is_set():
            if os.getppid() != parent:  # `ledger serve` died: do not outlive it
                break
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            peer = _Peer(conn, threading.Lock())
            with committer.peers_lock:
                committer.peers.append(peer)
            threading.Thread(target=committer.serve_peer, args=(peer,), daemon=True,
                             name="writer-peer").start()
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)
        committer.close()
        with committer.peers_lock:
            for peer in committer.peers:
                with contextlib.suppress(OSError):
                    peer.sock.shutdown(socket.SHUT_RDWR)


def writer_main(socket_path: str, max_batch: int = 256, max_wait: float = 0.002) -> int:
    """`ledger writer --socket PATH`: the ledger opened from the settings, as the API does."""
    from ledger.bootstrap import open_ledger
    from ledger.settings import get_settings

    settings = get_settings()
    if not settings.database_url.startswith(("postgresql", "postgres")):
        raise LedgerError("the writer process is for PostgreSQL only; SQLite writes in the "
                          "server process (drop --writer-process / LEDGER_WRITER_PROCESS)")
    ledger = open_ledger(settings, migrate=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sys.setswitchinterval(0.0005)
    try:
        run_writer(socket_path, ledger, max_batch=max_batch, max_wait=max_wait, stop=stop)
    finally:
        ledger.engine.dispose()
    return 0


# -- the HTTP side -----------------------------------------------------------------


class _Connection:
    def __init__(self, sock: socket.socket,
                 deliver: Callable[[_Connection, Any], None]) -> None:
        self.sock = sock
        self.pending: dict[int, tuple[Command, Future[Result], float]] = {}
        self.lock = threading.Lock()
        self.alive = True
        self._deliver = deliver
        self.thread = threading.Thread(target=self._read, daemon=True, name="writer-client")
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                message = _recv(self.sock)
                if message is None:
                    break
                self._deliver(self, message)
        except (OSError, EOFError, pickle.UnpicklingError):
            pass
        finally:
            self.fail("the writer process went away")

    def fail(self, why: str) -> None:
        """Every pending command's outcome is unknown: Unavailable (retry with the key)."""
        with self.lock:
            self.alive = False
            pending, self.pending = self.pending, {}
        with contextlib.suppress(OSError):
            self.sock.close()
        for command, future, _ in pending.values():
            error = OutcomeUnknown(f"{why} with this command in flight; it may or may "
                                   "not have been written: retry with the same "
                                   "Idempotency-Key")
            count_reservation(command, error)
            future.set_result(error)


class RemoteCommitter:
    """GroupCommitter's interface, the writing done by the writer process."""

    def __init__(self, socket_path: str, connect_timeout: float = 1.0) -> None:
        self.socket_path = socket_path
        self.connect_timeout = connect_timeout
        self.stats = BatchStats()  # the batches this process had commands in
        self._listeners: list[CommitListener] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._conn: _Connection | None = None
        self._closed = False

    def on_commit(self, listener: CommitListener) -> None:
        """Called with each batch's changed keys (any worker's) before its futures resolve."""
        self._listeners.append(listener)

    def submit(self, command: Command) -> Future[Result]:
        if self._closed:
            raise RuntimeError("remote committer is closed")
        future: Future[Result] = Future()
        request_id = next(self._ids)
        try:
            conn = self._connection()
        except OSError as exc:
            error = Unavailable(f"the writer process is not reachable ({type(exc).__name__}); "
                                "nothing was written, retry shortly")
            count_reservation(command, error)
            future.set_result(error)
            return future
        with conn.lock:
            if not conn.alive:
                conn = None  # type: ignore[assignment]
            else:
                conn.pending[request_id] = (command, future, time.monotonic())
        if conn is None:
            error = Unavailable("the writer process went away; nothing was written, "
                                "retry shortly")
            count_reservation(command, error)
            future.set_result(error)
            return future
        try:
            with self._lock:
                _send(conn.sock, (request_id, command))
        except OSError:
            conn.fail("lost the writer process while sending")
        return future

    def close(self, timeout: float = 10.0) -> None:
        self._closed = True
        conn = self._conn
        if conn is not None:
            deadline = time.monotonic() + timeout
            while conn.pending and conn.alive and time.monotonic() < deadline:
                time.sleep(0.01)
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            conn.thread.join(timeout)

    def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.alive:
            return conn
        with self._lock:
            if self._conn is not None and self._conn.alive:
                return self._conn
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(self.socket_path)
            except OSError:
                sock.close()
                raise
            sock.settimeout(None)
            self._conn = _Connection(sock, self._deliver)
            return self._conn

    def _deliver(self, conn: _Connection, message: Any) -> None:
        """In the reader thread: cache first, then metrics, then the acknowledgements."""
        changed, size, began, seconds, answers = message
        if changed:
            notify_commit(self._listeners, changed)
        if not answers:
            return
        self.stats.batches += 1
        self.stats.commands += size
        self.stats.largest = max(self.stats.largest, size)
        # The writer process has no /metrics: each HTTP process observes its batches.
        metrics.GROUP_COMMIT_BATCH.observe(size)
        metrics.GROUP_COMMIT_SECONDS.observe(seconds)
        with conn.lock:
            resolved = [(conn.pending.pop(rid, None), result) for rid, result in answers]
        for entry, result in resolved:
            if entry is not None:
                metrics.GROUP_COMMIT_WAIT.observe(max(0.0, began - entry[2]))
                count_reservation(entry[0], result)
        for entry, result in resolved:
            if entry is not None:
                entry[1].set_result(result)


# -- supervision, for `ledger serve --writer-process` ------------------------------


class WriterSupervisor:
    """Starts `ledger writer` on a socket in a private temp dir, restarts it when it
    dies, stops it on shutdown."""

    def __init__(self, ready_timeout: float = 60.0) -> None:
        self.dir = tempfile.mkdtemp(prefix="ledger-writer-")  # 0700
        self.socket_path = str(Path(self.dir) / "writer.sock")
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._wait_ready()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="writer-watch")
        self._thread.start()

    def _spawn(self) -> None:
        code = "import sys; from ledger.cli import main; sys.exit(main())"
        # Its own session: a Ctrl-C or a SIGTERM to the server's process group reaches
        # uvicorn, which drains its requests; the writer is stopped after that (stop()),
        # and exits by itself if the server dies (run_writer watches its parent).
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-c", code, "writer", "--socket", self.socket_path],
            start_new_session=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise LedgerError(f"the writer process exited ({self.proc.returncode}) "
                                  "before it was ready; see its error above")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(self.socket_path)
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise LedgerError("the writer process did not start listening in time")

    def _watch(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            assert self.proc is not None
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            log.error("writer process exited (%s); restarting", code)
            print(f"writer process exited ({code}); restarting", file=sys.stderr, flush=True)
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            self.restarts += 1
            self._spawn()
            with contextlib.suppress(LedgerError):
                self._wait_ready()
                backoff = 0.1

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
