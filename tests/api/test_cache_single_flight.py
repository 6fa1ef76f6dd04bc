"""Headroom cache, one computation per answer key (api.cache, "single flight"):
concurrent misses of one key cost one computation, but a request never takes a
result read before it arrived: one that arrives after a commit sees the commit,
whether a computation or a hot-path MGET was in flight when it arrived."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

import api.cache
from api.cache import HeadroomCache, KeyValue, MemoryKeyValue, RedisKeyValue
from ledger.policy.types import BucketKey
from ledger.queries import BucketState, HeadroomPlan, LedgerReader
from ledger.service import Ledger
from tests.api.conftest import H100
from tests.factories import consignee, line, operator, reserve

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

QUERY = ("SG", "op1", "sg-lab")


class GatedReader(LedgerReader):
    """Counts computations; `gate`, when armed, holds a computation in its worker thread
    right after its database read of the balances (before the answer is stored)."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger.engine, ledger.rule_set)
        self.plans = 0
        self.gate: threading.Event | None = None
        self.read_done = threading.Event()

    def headroom_plan(self, country: str, operator_id: str | None,
                      consignee_id: str | None, at: datetime) -> HeadroomPlan:
        self.plans += 1
        return super().headroom_plan(country, operator_id, consignee_id, at)

    def bucket_states(self, keys: Any, footprint_of: Any,
                      at: datetime) -> dict[BucketKey, BucketState]:
        states = super().bucket_states(keys, footprint_of, at)
        self.read_done.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        return states


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> KeyValue:
    if request.param == "memory":
        return MemoryKeyValue()
    return RedisKeyValue(request.getfixturevalue("redis_url"))


def _setup(ledger: Ledger, store: KeyValue) -> tuple[HeadroomCache, GatedReader]:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    reader = GatedReader(ledger)
    cache = HeadroomCache(reader, store, namespace=uuid.uuid4().hex[:12])
    ledger.on_commit(cache.buckets_changed)
    return cache, reader


def _lpp(answer: dict[str, Any]) -> int:
    return int(next(b for b in answer["buckets"] if b["kind"] == "lpp")["available"])


async def _wait_for(event: threading.Event) -> None:
    for _ in range(1000):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the computation never read the database")


async def test_concurrent_misses_of_one_key_cost_one_computation(
    ledger: Ledger, store: KeyValue
) -> None:
    cache, reader = _setup(ledger, store)
    reader.gate = threading.Event()
    at = ledger.clock.now()
    tasks = [asyncio.create_task(cache.answer(*QUERY, at)) for _ in range(20)]
    await _wait_for(reader.read_done)
    await asyncio.sleep(0.1)  # every request is waiting for that computation now
    reader.gate.set()
    answers = await asyncio.gather(*tasks)
    assert reader.plans == 1
    assert all(a == answers[0] for a in answers)
    assert cache.misses == 1 and cache.hits == 19  # the others: the hot path, after it

    # Later requests: the hot path, no computation.
    assert await cache.answer(*QUERY, at) == answers[0]
    assert reader.plans == 1
    assert not cache._flights and not cache._reads_next and not cache._reads_sent


async def test_a_request_arriving_after_a_commit_never_takes_an_older_computation(
    ledger: Ledger, store: KeyValue
) -> None:
    cache, reader = _setup(ledger, store)
    reader.gate = threading.Event()
    at = ledger.clock.now()
    early = asyncio.create_task(cache.answer(*QUERY, at))
    await _wait_for(reader.read_done)  # its balances are read: the commit comes after

    reserve(ledger, line("SG", "sg-lab", quantity=10))  # acknowledged here
    late = asyncio.create_task(cache.answer(*QUERY, at))  # arrives after the commit
    await asyncio.sleep(0.1)  # ... and waits for the computation in flight
    assert not late.done()
    reader.gate.set()
    reader.gate = None
    before, after = await early, await late
    assert _lpp(before) - _lpp(after) == 10 * H100
    assert reader.plans == 2  # the late request computed again, after the first
    assert await cache.answer(*QUERY, at) == after  # the hot path serves the new one


class GatedStore(MemoryKeyValue):
    """An in-process store whose hot-path MGET reads at once but answers only when
    `gate` is set: a reply still on its way while a write is acknowledged."""

    def __init__(self) -> None:
        super().__init__()
        self.gate: asyncio.Event | None = None
        self.amgets = 0

    async def amget(self, keys: Sequence[str]) -> list[str | None]:
        self.amgets += 1
        values = self.mget(keys)
        if self.gate is not None:
            await self.gate.wait()
        return values


async def test_a_request_arriving_after_a_commit_never_shares_an_older_mget(
    ledger: Ledger,
) -> None:
    store = GatedStore()
    cache, reader = _setup(ledger, store)
    at = ledger.clock.now()
    full = _lpp(await cache.answer(*QUERY, at))
    assert reader.plans == 1

    store.gate = asyncio.Event()
    early = [asyncio.create_task(cache.answer(*QUERY, at))]
    await asyncio.sleep(0.05)  # its MGET sent (the values read), the reply held
    assert store.amgets == 1
    reserve(ledger, line("SG", "sg-lab", quantity=10))  # acknowledged here
    late = [asyncio.create_task(cache.answer(*QUERY, at)) for _ in range(5)]
    await asyncio.sleep(0.05)
    store.gate.set()
    store.gate = None
    assert [_lpp(a) for a in await asyncio.gather(*early)] == [full]
    assert [_lpp(a) for a in await asyncio.gather(*late)] == [full - 10 * H100] * 5
    assert store.amgets == 2  # the late ones shared one MGET, sent after they arrived
    assert reader.plans == 2  # ... which proved the answer stale: one computation
    assert cache.shared == 4  # started after they arrived: its answer is theirs
    assert not cache._flights and not cache._reads_next and not cache._reads_sent


async def test_an_answer_near_its_age_is_recomputed_in_the_background_once(
    ledger: Ledger, store: KeyValue, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, reader = _setup(ledger, store)
    at = ledger.clock.now()
    first = await cache.answer(*QUERY, at)
    memo = cache._memo[next(iter(cache._memo))]

    # Every served answer is now "near its age": each hit would ask for a refresh.
    monkeypatch.setattr(api.cache, "REFRESH_AHEAD_S", 10.0)
    reader.gate = threading.Event()
    reader.read_done.clear()
    answers = await asyncio.gather(*(cache.answer(*QUERY, at) for _ in range(10)))
    assert answers == [first] * 10  # served at once, none waited for the refresh
    await _wait_for(reader.read_done)
    assert reader.plans == 2  # one refresh for all of them
    reader.gate.set()
    reader.gate = None
    await asyncio.gather(*cache._background)
    renewed = cache._memo[next(iter(cache._memo))]
    assert renewed[6] > memo[6]  # a later fresh_until
    assert renewed[4] == memo[4]  # computed at the instant of the answer it replaces
    monkeypatch.undo()
    assert await cache.answer(*QUERY, at) == first
    assert reader.plans == 2 and not cache._background
