"""Recently authenticated keys, so each request is not a database read; and how a
revocation reaches them.

The bound on a revoked key being accepted:
- the process that revoked it drops it at once;
- with Redis, every other process drops it before the revocation is answered:
  the revoker publishes on `ledger.keys.REVOKED_CHANNEL` and waits until each
  subscribed process confirms (RevocationListener); principals are then kept
  LIVE_TTL_S;
- without Redis, or while a process's subscription is down, a principal is kept
  only SHORT_TTL_S, which bounds how long another process may still accept a
  revoked key. Losing or regaining the subscription clears the cache (a
  revocation may have been missed).
Expiry needs no notice: every request compares the key's expiry with the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time

import redis
import redis.asyncio as aioredis

from ledger.keys import REVOKED_CHANNEL, Principal

log = logging.getLogger(__name__)

LIVE_TTL_S = 30.0  # revocations are pushed to this process: keep principals long
SHORT_TTL_S = 5.0  # no push (no Redis, or the subscription is down): the documented bound
RECONNECT_S = 1.0
HEALTH_CHECK_S = 5  # a silent Redis connection is noticed within about this long


class PrincipalCache:
    """Recently authenticated keys (by hash), so each request is not a database read."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        self._live = False
        # Bumped on every revocation heard: a principal read from the database before
        # a revocation is not cached after it (see generation()/put()).
        self._generation = 0

    @property
    def live(self) -> bool:
        return self._live

    def set_live(self, live: bool) -> None:
        """Whether revocations are pushed to this process. Any change clears the cache:
        while not live, a revocation elsewhere may have gone unheard."""
        with self._lock:
            self._live = live
            self._items.clear()
            self._generation += 1

    def generation(self) -> int:
        return self._generation

    def get(self, digest: str) -> Principal | None:
        with self._lock:
            item = self._items.get(digest)
        if item is None or item[1] < time.monotonic():
            return None
        return item[0]

    def put(self, digest: str, principal: Principal, generation: int | None = None) -> None:
        """Caches a principal read from the database; `generation` is generation() as it
        was before that read (a revocation heard since then means: do not cache)."""
        with self._lock:
            if generation is not None and generation != self._generation:
                return
            if len(self._items) > 10_000:
                self._items.clear()
            ttl = LIVE_TTL_S if self._live else SHORT_TTL_S
            self._items[digest] = (principal, time.monotonic() + ttl)

    def revoked(self, key_id: str) -> None:
        """Drops every cached principal of `key_id`."""
        with self._lock:
            self._generation += 1
            for digest in [d for d, (p, _) in self._items.items() if p.key_id == key_id]:
                del self._items[digest]


class RevocationListener:
    """Subscribes to revocations in Redis, drops revoked keys from the cache and
    confirms to the revoker. Runs as a task on the app's event loop."""

    def __init__(self, redis_url: str, principals: PrincipalCache) -> None:
        self._url = redis_url
        self._principals = principals
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_subscribed(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout)
        return self._subscribed.is_set()

    async def _run(self) -> None:
        while True:
            client = aioredis.Redis.from_url(self._url, socket_connect_timeout=1,
                                             health_check_interval=HEALTH_CHECK_S)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(REVOKED_CHANNEL)
                    await self._listen(pubsub, client)
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as exc:
                if self._principals.live:
                    log.warning("revocation channel lost (%s); principals kept %.0f s",
                                exc, SHORT_TTL_S)
            finally:
                self._subscribed.clear()
                if self._principals.live:
                    self._principals.set_live(False)
                await client.aclose()
            await asyncio.sleep(RECONNECT_S)

    async def _listen(self, pubsub: aioredis.client.PubSub, client: aioredis.Redis) -> None:
        while True:
            # The timeout makes the loop ping a quiet connection (health_check_interval),
            # so a dead one raises instead of waiting for ever.
            message = await pubsub.get_message(timeout=HEALTH_CHECK_S)
            if message is None:
                continue
            if message["type"] == "subscribe":
                self._principals.set_live(True)
                self._subscribed.set()
                continue
            if message["type"] != "message":
                continue
            try:
                notice = json.loads(message["data"])
                key_id, ack = str(notice["key_id"]), str(notice["ack"])
            except (ValueError, KeyError, TypeError):
                log.warning("ignored a malformed revocation notice: %r", message["data"])
                continue
            self._principals.revoked(key_id)
            async with client.pipeline(transaction=True) as pipe:
                pipe.rpush(ack, 1)
                pipe.expire(ack, 30)
                await pipe.execute()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
