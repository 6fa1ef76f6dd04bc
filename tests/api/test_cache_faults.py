"""Headroom after a Redis fault (issue 9, defect 2): a stale answer is possible only
for less than api.cache.ANSWER_TTL_S after the write was acknowledged, whichever
process wrote, even if it died.

The fault tests run two real `ledger serve` processes, A and B, on a fresh
PostgreSQL database and a Redis of the test's own (never the shared one), which
they pause, kill, restart (empty, or from a snapshot) or cut off from A alone
(A reaches it through a TCP proxy in this file). Each one writes through A and
then reads through B for a while, recording the latest start (after the
write's acknowledgment) of any read that still showed the old headroom.
`pytest -s` prints the figures quoted in the README.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from api.cache import KeyValue
from tests.api.conftest import H100, Api, bucket, line, seed_consignee, seed_operator
from tests.conftest import POSTGRES_URL, _admin_engine

BOUND_S = 1.5  # api.cache.ANSWER_TTL_S, the documented bound (spelled out: old code had 60)
SLACK_S = 0.5  # a loaded 2-core machine; today's code was stale for a minute
WATCH_S = 5.0  # > BREAKER_OPEN_S (3 s) + BOUND_S: a breaker closing late cannot hide staleness
FULL_LPP = 26_900_000
QUERY = "/v1/headroom?country=SG&operator_id=op1&consignee_id=sg-lab"
VENV_BIN = Path(sys.executable).parent
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


# -- in process: the age check holds in both paths, whatever the store keeps -----------


class NeverExpires:
    """A KeyValue that keeps everything for ever: e.g. a SET Redis applied late, after
    a pause, or an answer restored from a snapshot. Only the answer's own age is left."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def mget(self, keys: Sequence[str]) -> list[str | None]:
        return [self.data.get(k) for k in keys]

    async def amget(self, keys: Sequence[str]) -> list[str | None]:
        return self.mget(keys)

    def set_many(self, items: dict[str, str], ttl_s: float) -> None:
        self.data.update(items)

    def set_missing(self, items: dict[str, str], ttl_s: int) -> None:
        for k, v in items.items():
            self.data.setdefault(k, v)


def _lpp_available(api: Api) -> int:
    r = api.get(QUERY, role="vendor")
    assert r.status_code == 200, r.text
    return int(bucket(r.json(), "lpp")["available"])


def test_a_lost_token_replacement_goes_stale_for_at_most_the_answer_age(
    sqlite_url: str, start_api: Callable[..., Api]
) -> None:
    one = start_api(sqlite_url)
    two = start_api(sqlite_url)  # another process, sharing the store below
    shared: KeyValue = NeverExpires()
    for api in (one, two):
        api.client.app.state.services.headroom.store = shared
    seed_operator(one, hq="SG")
    seed_consignee(one, "sg-lab", "SG")
    assert _lpp_available(one) == FULL_LPP
    assert _lpp_available(one) == FULL_LPP  # now remembered: the hot path serves it
    # `two` cannot reach the store: its token replacement is lost (and it may die).
    two.client.app.state.services.headroom._breaker_until = time.monotonic() + 3600
    acked = time.monotonic()
    r = two.reserve([line("SG", "sg-lab", quantity=10)], key="k1")
    assert r.status_code == 201, r.text
    time.sleep(max(0.0, acked + BOUND_S + 0.05 - time.monotonic()))
    # Both checks are needed: the hot path's (remembered fresh_until) and the full
    # path's (the stored document's), as this store never drops the old answer.
    assert _lpp_available(one) == FULL_LPP - 10 * H100
    assert _lpp_available(one) == FULL_LPP - 10 * H100  # and cached again, exactly


def test_answers_stay_exact_and_cached_without_faults(
    sqlite_url: str, start_api: Callable[..., Api]
) -> None:
    api = start_api(sqlite_url)
    seed_operator(api, hq="SG")
    seed_consignee(api, "sg-lab", "SG")
    cache = api.client.app.state.services.headroom
    assert _lpp_available(api) == FULL_LPP
    hits = cache.hits
    assert _lpp_available(api) == FULL_LPP
    assert cache.hits == hits + 1  # the age does not stop a young answer being served
    assert api.reserve([line("SG", "sg-lab", quantity=3)], key="k").status_code == 201
    assert _lpp_available(api) == FULL_LPP - 3 * H100  # the tokens keep it exact


# -- two real server processes, PostgreSQL and a private Redis ----------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own that it may pause, kill and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, from_snapshot: bool = False) -> None:
        if not from_snapshot:
            (self.dir / "dump.rdb").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--dir", str(self.dir), "--dbfilename", "dump.rdb"],
            stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            finally:
                client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


class CuttableProxy:
    """127.0.0.1 TCP proxy in front of Redis; `cut()` makes Redis unreachable through it
    (open connections closed, new ones closed at once) while others still reach it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.cut_off = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off:
                conn.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=1)
            except OSError:
                conn.close()
                continue
            up.settimeout(None)
            with self._lock:
                self._socks += [conn, up]
            for src, dst in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.cut_off = True
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.cut()
        self.listener.close()


class Server:
    """One `ledger serve` process."""

    def __init__(self, name: str, database_url: str, redis_url: str, logdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LEDGER_DATABASE_URL": database_url,
               "LEDGER_REDIS_URL": redis_url, "LEDGER_JOBS_IN_SERVE": "false",
               "LEDGER_RATE_LIMIT_PER_MINUTE": "0"}
        self.log = open(logdir / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "ledger"), "serve", "--port", str(self.port)],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.base, timeout=10)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server {self.name} exited"
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server {self.name} did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.http.close()
        self.log.close()


class Cluster:
    """Redis, the proxy and the two servers, shared by the tests of this module (starting
    servers is the slow part); `reset` undoes the previous test's fault."""

    def __init__(self, redis_: PrivateRedis, proxy: CuttableProxy, a: Server, b: Server,
                 key: str, database_url: str, workdir: Path) -> None:
        self.redis, self.proxy, self.a, self.b = redis_, proxy, a, b
        self.headers = {"Authorization": f"Bearer {key}"}
        self.database_url, self.workdir = database_url, workdir
        self._writes = 0

    def reset(self) -> None:
        if self.redis.proc is None or self.redis.proc.poll() is not None:
            self.redis.start()
        self.proxy.cut_off = False
        if self.a.proc.poll() is not None:  # killed by the previous test
            self.a.stop()
            self.a = Server("A2", self.database_url, self.proxy.url, self.workdir)
            self.a.wait_ready()
        # Both breakers closed: every fault lies more than BREAKER_OPEN_S back, and only
        # B was read since; A's next Redis call replays what it still holds.
        assert self.available(self.a) == self.available(self.b)

    def put(self, server: Server, path: str, body: dict[str, Any]) -> None:
        r = server.http.put(path, json=body, headers=self.headers)
        assert r.status_code == 200, r.text

    def available(self, server: Server) -> int:
        r = server.http.get(QUERY, headers=self.headers)
        assert r.status_code == 200, r.text
        return int(bucket(r.json(), "lpp")["available"])

    def fresh_answer_on_b(self) -> int:
        """B computes and caches an answer now (a reference PUT through B replaced the
        token every answer carries), so it is as young as it can be at the write."""
        self.put(self.b, "/v1/operators/op1", {"name": "op1", "hq_country": "SG", "veu": None})
        value = self.available(self.b)
        assert self.available(self.b) == value
        return value

    def write_through_a(self) -> tuple[float, int]:
        """Reserves 1 H100 through A; returns when it was acknowledged."""
        self._writes += 1
        r = self.a.http.post(
            "/v1/reservations", headers={**self.headers, "Idempotency-Key": f"w{self._writes}"},
            json={"lines": [line("SG", "sg-lab", quantity=1)], "hold_seconds": 3600})
        assert r.status_code == 201, r.text
        return time.monotonic(), H100

    def watch_b(self, acked: float, expected: int, seconds: float
                ) -> tuple[float | None, float | None]:
        """Reads through B for `seconds` after `acked`: (latest start of a stale read,
        first start of a current one), both in seconds after the acknowledgment."""
        last_stale: float | None = None
        first_fresh: float | None = None
        while (started := time.monotonic()) < acked + seconds:
            value = self.available(self.b)
            if value == expected:
                if first_fresh is None:
                    first_fresh = started - acked
            else:
                assert value == expected + H100, value  # the old answer, nothing else
                last_stale = started - acked
            time.sleep(0.01)
        return last_stale, first_fresh


@pytest.fixture(scope="module")
def module_pg_url(pg_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this module (as the `pg_url` fixture, longer-lived)."""
    name = f"ledger_t_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(
        hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="module")
def shared_cluster(module_pg_url: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Cluster]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    pg_url, tmp_path = module_pg_url, tmp_path_factory.mktemp("faults")
    private = PrivateRedis(tmp_path)
    private.start()
    proxy = CuttableProxy(private.port)
    env = {**os.environ, "LEDGER_DATABASE_URL": pg_url}
    key = subprocess.run(
        [str(VENV_BIN / "ledger"), "keys", "create", "--role", "admin", "--name", "faults"],
        env=env, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
    a = Server("A", pg_url, proxy.url, tmp_path)  # A reaches Redis through the proxy
    b = Server("B", pg_url, private.url, tmp_path)
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(Server.wait_ready, (a, b)))
        c = Cluster(private, proxy, a, b, key, pg_url, tmp_path)
        c.put(a, "/v1/operators/op1", {"name": "op1", "hq_country": "SG", "veu": None})
        c.put(a, "/v1/consignees/sg-lab", {"name": "sg-lab", "country": "SG",
                                           "operator_id": "op1", "group_id": None})
        assert c.available(a) == c.available(b) == FULL_LPP
        yield c
    finally:
        for s in (c.a if "c" in locals() else a, b):
            s.stop()
        proxy.close()
        private.kill()


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Cluster:
    shared_cluster.reset()
    return shared_cluster


def _report(fault: str, last_stale: float | None, first_fresh: float | None) -> None:
    stale = "never" if last_stale is None else f"{last_stale:.3f} s"
    fresh = "never" if first_fresh is None else f"{first_fresh:.3f} s"
    print(f"\n[headroom staleness] {fault}: last stale read started {stale} after the "
          f"write's ack; first current read at {fresh}")


def _pause(c: Cluster) -> None:
    c.redis.signal(signal.SIGSTOP)
    try:
        assert c.available(c.a) > 0  # A's Redis call times out: A's breaker opens
    finally:
        c.redis.signal(signal.SIGCONT)


@pytest.mark.postgres
@pytest.mark.redis
def test_no_fault_b_sees_a_write_at_once(cluster: Cluster) -> None:
    before = cluster.fresh_answer_on_b()
    acked, tpp = cluster.write_through_a()
    last_stale, first_fresh = cluster.watch_b(acked, before - tpp, 1.0)
    _report("no fault", last_stale, first_fresh)
    assert last_stale is None  # under normal operation: exact


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("writer_dies", [False, True], ids=["writer-lives", "writer-dies"])
def test_redis_paused_then_write_through_a_with_its_breaker_open(
    cluster: Cluster, writer_dies: bool
) -> None:
    before = cluster.fresh_answer_on_b()
    _pause(cluster)
    acked, tpp = cluster.write_through_a()  # A's replacement is pending, not sent
    if writer_dies:
        cluster.a.proc.kill()  # it dies before replaying it
    last_stale, first_fresh = cluster.watch_b(acked, before - tpp, WATCH_S)
    _report(f"Redis paused, writer {'killed' if writer_dies else 'alive'}", last_stale,
            first_fresh)
    assert last_stale is None or last_stale <= BOUND_S + SLACK_S


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_redis_killed_and_restarted_from_its_snapshot(cluster: Cluster) -> None:
    before = cluster.fresh_answer_on_b()
    cluster.redis.client().save()  # as a persistent Redis would have it on disk
    cluster.redis.kill()
    acked, tpp = cluster.write_through_a()  # A's replacement fails: pending
    cluster.redis.start(from_snapshot=True)  # the old answer and its tokens are back
    last_stale, first_fresh = cluster.watch_b(acked, before - tpp, WATCH_S)
    _report("Redis killed, restarted from snapshot", last_stale, first_fresh)
    assert last_stale is None or last_stale <= BOUND_S + SLACK_S


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_redis_killed_and_restarted_empty(cluster: Cluster) -> None:
    before = cluster.fresh_answer_on_b()
    cluster.redis.kill()
    acked, tpp = cluster.write_through_a()
    cluster.redis.start()
    last_stale, first_fresh = cluster.watch_b(acked, before - tpp, WATCH_S)
    _report("Redis killed, restarted empty", last_stale, first_fresh)
    assert last_stale is None or last_stale <= BOUND_S + SLACK_S


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_redis_unreachable_from_the_writer_only(cluster: Cluster) -> None:
    before = cluster.fresh_answer_on_b()
    cluster.proxy.cut()  # A alone loses Redis, for good
    acked, tpp = cluster.write_through_a()
    last_stale, first_fresh = cluster.watch_b(acked, before - tpp, WATCH_S)
    _report("Redis unreachable from the writer", last_stale, first_fresh)
    assert last_stale is None or last_stale <= BOUND_S + SLACK_S
