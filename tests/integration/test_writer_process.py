"""The writer process (ledger.writer_process): real `ledger writer` processes on a real
PostgreSQL, RemoteCommitter clients over its Unix socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from ledger.audit import verify_chain
from ledger.cli import main
from ledger.clock import SystemClock
from ledger.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidInput,
    LedgerError,
    OutcomeUnknown,
    Unavailable,
)
from ledger.policy.ruleset import load_rule_set
from ledger.policy.types import BucketKey
from ledger.service import Ledger, Result
from ledger.store.engine import create_ledger_engine
from ledger.views import CommitCommand, ReleaseCommand, ReserveCommand, ReserveOutcome
from ledger.writer_process import RemoteCommitter
from tests.factories import consignee, line, operator


class Writer:
    """`ledger writer --socket PATH` in its own process."""

    def __init__(self, url: str, socket_path: str, max_wait: float = 0.002) -> None:
        self.url, self.socket_path, self.max_wait = url, socket_path, max_wait
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "LEDGER_DATABASE_URL": self.url}
        env.pop("LEDGER_REDIS_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from ledger.cli import main; sys.exit(main())",
             "writer", "--socket", self.socket_path, "--max-wait", str(self.max_wait)],
            env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "writer exited"
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(self.socket_path)
                    return
                except OSError:
                    time.sleep(0.05)
        raise AssertionError("writer did not listen")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@pytest.fixture
def ledger(pg_url: str) -> Iterator[Ledger]:
    engine = create_ledger_engine(pg_url)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"), SystemClock())
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    yield ledger
    engine.dispose()


@pytest.fixture
def sock(tmp_path: Path) -> str:
    tmp_path.chmod(0o700)
    return str(tmp_path / "writer.sock")


def _cmd(key: str, quantity: int = 1) -> ReserveCommand:
    return ReserveCommand("v", (line("SG", "sg-lab", quantity=quantity),), 86400, key)


def _reservations_counted() -> float:
    return sum(sample.value for metric in REGISTRY.collect()
               if metric.name == "ledger_reservations"
               for sample in metric.samples if sample.name == "ledger_reservations_total")


def test_answers_like_in_thread(ledger: Ledger, pg_url: str, sock: str) -> None:
    writer = Writer(pg_url, sock)
    writer.start()
    client = RemoteCommitter(sock)
    counted = _reservations_counted()
    try:
        held = client.submit(_cmd("k1", quantity=1000)).result(30)
        denied = client.submit(_cmd("k2", quantity=1000)).result(30)  # over LPP after k1
        replay = client.submit(_cmd("k1", quantity=1000)).result(30)
        reused = client.submit(_cmd("k1", quantity=2)).result(30)
        invalid = client.submit(
            ReserveCommand("v", (line("SG", "sg-lab", tpp=0),), 60, "k3")).result(30)
        assert isinstance(held, ReserveOutcome) and held.held and held.reservation
        assert isinstance(denied, ReserveOutcome) and not denied.held and denied.violations
        assert isinstance(replay, ReserveOutcome) and replay.replayed
        assert replay.reservation and replay.reservation.id == held.reservation.id
        assert isinstance(reused, IdempotencyMismatch) and reused.code == "idempotency_key_reused"
        assert isinstance(invalid, InvalidInput) and invalid.field == "lines[0].tpp"
        released = client.submit(ReleaseCommand("v", held.reservation.id)).result(30)
        again = client.submit(CommitCommand("v", held.reservation.id)).result(30)
        assert getattr(released, "status", None) == "released"
        assert isinstance(again, Conflict) and again.code != "ledger_error"  # its own code
        # Counted here, in the process that serves /metrics, not in the writer's.
        assert _reservations_counted() - counted == 5
        # The API's own ledger sees what the writer process committed.
        assert ledger.get_reservation(held.reservation.id).status == "released"
        assert verify_chain(ledger.engine).ok
    finally:
        client.close()
        writer.stop()


def test_two_clients_share_batches(ledger: Ledger, pg_url: str, sock: str) -> None:
    writer = Writer(pg_url, sock, max_wait=0.5)  # a long linger: both clients' commands meet
    writer.start()
    a, b = RemoteCommitter(sock), RemoteCommitter(sock)
    heard_by_b: list[set[BucketKey]] = []
    b.on_commit(heard_by_b.append)
    try:
        futures = [a.submit(_cmd(f"a{i}")) for i in range(5)]
        futures += [b.submit(_cmd(f"b{i}")) for i in range(5)]
        results = [f.result(30) for f in futures]
        assert all(isinstance(r, ReserveOutcome) and r.held for r in results)
        # Some batch held more commands than either client sent: both clients' commands.
        assert max(a.stats.largest, b.stats.largest) > 5
        assert heard_by_b  # every client hears the changed keys
        assert verify_chain(ledger.engine).entries == 10
    finally:
        a.close()
        b.close()
        writer.stop()


def test_cache_listener_runs_before_the_acknowledgement(ledger: Ledger, pg_url: str,
                                                         sock: str) -> None:
    writer = Writer(pg_url, sock)
    writer.start()
    client = RemoteCommitter(sock)
    futures: list[Future[Result]] = []
    seen: list[tuple[set[BucketKey], bool]] = []
    client.on_commit(lambda keys: seen.append((keys, futures[0].done())))
    try:
        futures.append(client.submit(_cmd("k1")))
        outcome = futures[0].result(30)
        assert isinstance(outcome, ReserveOutcome) and outcome.held
        assert seen and seen[0][1] is False  # called, and before the future resolved
        assert any(k.kind == "lpp" for k in seen[0][0])
    finally:
        client.close()
        writer.stop()


def test_kill_9_loses_no_acknowledged_write(ledger: Ledger, pg_url: str, sock: str) -> None:
    writer = Writer(pg_url, sock)
    writer.start()
    client = RemoteCommitter(sock)
    acknowledged: list[str] = []
    unavailable: list[str] = []
    stop = threading.Event()
    enough = threading.Event()

    def load(worker: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"w{worker}-{i}"
            i += 1
            result = client.submit(_cmd(key)).result(30)
            if isinstance(result, ReserveOutcome) and result.reservation:
                acknowledged.append(result.reservation.id)
                if len(acknowledged) >= 50:
                    enough.set()
            elif isinstance(result, Unavailable):
                if isinstance(result, OutcomeUnknown):  # in flight when the writer died
                    unavailable.append(key)
                return
            else:
                raise AssertionError(f"unexpected {result!r}")

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    try:
        assert enough.wait(60)
        writer.kill9()  # mid-load: commands in flight
        for t in threads:
            t.join(30)
        stop.set()
        assert unavailable  # the ones in flight: outcome unknown
        assert client.submit(_cmd("after")).result(10).__class__ is Unavailable
        for rid in acknowledged:  # every acknowledged reservation is in the database
            assert ledger.get_reservation(rid).status == "held"
        assert verify_chain(ledger.engine).ok

        writer.start()  # restarted: the next submit reconnects
        outcome = client.submit(_cmd("after-restart")).result(30)
        assert isinstance(outcome, ReserveOutcome) and outcome.held
        # An unknown outcome, retried with its key, is answered (held or replayed).
        retried = client.submit(_cmd(unavailable[0])).result(30)
        assert isinstance(retried, ReserveOutcome) and retried.reservation
    finally:
        stop.set()
        client.close()
        writer.stop()


def test_submit_without_a_writer_is_unavailable(sock: str) -> None:
    client = RemoteCommitter(sock)
    result = client.submit(_cmd("k1")).result(5)
    assert isinstance(result, Unavailable) and isinstance(result, LedgerError)


def test_sqlite_refuses_the_flag(sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from ledger.settings import get_settings

    monkeypatch.setenv("LEDGER_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    try:
        assert main(["serve", "--writer-process", "--port", "1"]) == 2
    finally:
        get_settings.cache_clear()
    assert "PostgreSQL only" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _writer_pids(server_pid: int) -> list[int]:
    children = [pid for task in Path(f"/proc/{server_pid}/task").iterdir()
                for pid in (task / "children").read_text().split()]
    return [int(p) for p in children
            if "writer" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]


def test_serve_with_writer_process_survives_its_death(pg_url: str) -> None:
    """`ledger serve --writer-process` end to end: reserve over HTTP, kill -9 the writer,
    the server restarts it and reservations are answered again."""
    import httpx

    from bench.seed import seed
    from bench.server import Server

    db = seed(pg_url)
    env = {"LEDGER_DATABASE_URL": pg_url, "LEDGER_JOBS_IN_SERVE": "false",
           "LEDGER_WRITER_PROCESS": "true", "LEDGER_REDIS_URL": ""}
    server = Server(env, port=_free_port())
    headers = {"Authorization": f"Bearer {db.vendor_key}"}
    body = {"lines": [{"destination_country": "SG", "operator_id": "bench-op",
                       "consignee_id": "bench-c1", "tpp": 1000}], "hold_seconds": 600}

    def reserve(key: str) -> httpx.Response:
        return httpx.post(server.base + "/v1/reservations", json=body, timeout=30,
                          headers={**headers, "Idempotency-Key": key})

    try:
        first = reserve("e2e-1")
        assert first.status_code == 201, first.text
        (writer,) = _writer_pids(server.proc.pid)
        os.kill(writer, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = reserve("e2e-2")
            if response.status_code == 201:
                break
            assert response.status_code == 503, response.text
            time.sleep(0.1)
        assert response.status_code == 201
        (restarted,) = _writer_pids(server.proc.pid)
        assert restarted != writer
        again = reserve("e2e-1")  # idempotent replay through the new writer
        assert again.json()["id"] == first.json()["id"]
    finally:
        server.stop()
