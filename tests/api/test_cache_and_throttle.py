"""Headroom cache (Redis and in-process), Redis going away mid-test, and the throttle."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.api.conftest import (
    H100,
    Api,
    bucket,
    line,
    seed_consignee,
    seed_license,
    seed_operator,
)

QUERIES = [
    "/v1/headroom?country=SG&consignee_id=sg-1",
    "/v1/headroom?country=SG&operator_id=op1&consignee_id=sg-1",
    "/v1/headroom?country=AE&operator_id=uv",
    "/v1/headroom?country=SG",
]


def scenario(api: Api) -> list[Any]:
    """A run of writes and reads; returns every headroom answer seen along the way."""
    seen: list[Any] = []

    def look() -> None:
        for q in QUERIES:
            r = api.get(q, role="vendor")
            assert r.status_code == 200, r.text
            seen.append(r.json())

    seed_operator(api)
    seed_operator(api, "uv", veu={"type": "UVEU"}, footprint={"US": 10**9})
    seed_consignee(api, "sg-1", "SG")
    seed_consignee(api, "uv-ae", "AE", operator_id="uv")
    look()
    look()  # same answers again (from the cache when it is on)
    rid = api.reserve([line("SG", "sg-1", quantity=5)], key="a", hold_seconds=120).json()["id"]
    look()
    api.reserve([line("AE", "uv-ae", "uv", tpp=1_000_000)], key="b")
    look()
    seed_license(api, "sg-lic", "SG", 10**8)  # reference change: a new bucket appears
    look()
    api.post(f"/v1/reservations/{rid}/commit", role="vendor")
    look()
    api.reserve([line("SG", "sg-1", quantity=7)], key="c", hold_seconds=60)
    look()
    api.clock.advance(61)  # that hold lapses with no commit at all
    look()
    return seen


@pytest.fixture
def sqlite_url_pair(sqlite_template: Any, tmp_path: Any) -> tuple[str, str]:
    urls = []
    for name in ("a.db", "b.db"):
        shutil.copy(sqlite_template, tmp_path / name)
        urls.append(f"sqlite:///{tmp_path / name}")
    return urls[0], urls[1]


@pytest.mark.redis
def test_redis_cache_on_and_off_agree(
    sqlite_url_pair: tuple[str, str], redis_url: str, start_api: Callable[..., Api]
) -> None:
    with_redis = start_api(sqlite_url_pair[0], redis_url=redis_url)
    without = start_api(sqlite_url_pair[1])
    cached, plain = scenario(with_redis), scenario(without)
    assert cached == plain
    cache = with_redis.client.app.state.services.headroom
    assert cache.hits > 0  # the cache did serve
    # the lapsed hold counts for nothing in the cached answer too
    assert bucket(cached[-4], "lpp")["held"] == 0
    assert bucket(cached[-4], "lpp")["committed"] == 5 * H100


def test_in_process_cache_serves_and_stays_exact(sqlite_api: Api) -> None:
    seen = scenario(sqlite_api)
    cache = sqlite_api.client.app.state.services.headroom
    assert cache.hits > 0
    lpp_held = [bucket(a, "lpp")["held"] for a in seen[::4]]
    assert lpp_held == [0, 0, 5 * H100, 5 * H100, 5 * H100, 0, 7 * H100, 0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis of this test's own, which the test may kill (never the shared one)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_redis_stopped_mid_test_degrades_reads_to_the_database(
    sqlite_url: str, own_redis: tuple[str, subprocess.Popen[bytes]],
    start_api: Callable[..., Api],
) -> None:
    url, proc = own_redis
    api = start_api(sqlite_url, redis_url=url)
    seed_operator(api)
    seed_consignee(api, "sg-1", "SG")
    query = "/v1/headroom?country=SG&consignee_id=sg-1"
    assert bucket(api.get(query, role="vendor").json(), "lpp")["held"] == 0
    assert redis.Redis.from_url(url).dbsize() > 0  # answers and tokens live in Redis
    proc.kill()
    proc.wait()
    started = time.monotonic()
    r = api.reserve([line("SG", "sg-1", quantity=2)], key="a")  # writes carry on
    assert r.status_code == 201
    head = api.get(query, role="vendor")  # reads fall back to the database
    assert head.status_code == 200
    assert bucket(head.json(), "lpp")["held"] == 2 * H100
    assert api.get("/v1/entries", role="auditor").status_code == 200  # throttle degrades too
    assert time.monotonic() - started < 5


def test_throttle_answers_429_with_retry_after(
    sqlite_url: str, start_api: Callable[..., Api]
) -> None:
    api = start_api(sqlite_url, rate_limit_per_minute=5)
    codes = [api.get("/v1/chips", role="auditor").status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    r = api.get("/v1/chips", role="auditor")
    assert r.json()["type"] == "https://tpp-ledger.dev/problems/too-many-requests"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert api.get("/v1/chips", role="vendor").status_code == 200  # per key


@pytest.mark.redis
def test_redis_throttle_is_shared(sqlite_url: str, redis_url: str,
                                  start_api: Callable[..., Api]) -> None:
    redis.Redis.from_url(redis_url).flushdb()
    one = start_api(sqlite_url, redis_url=redis_url, rate_limit_per_minute=4)
    two = start_api(sqlite_url, redis_url=redis_url, rate_limit_per_minute=4)
    two.keys = one.keys
    codes = [a.get("/v1/chips", role="auditor").status_code for a in (one, two) * 3]
    assert codes.count(200) == 4 and codes.count(429) == 2
