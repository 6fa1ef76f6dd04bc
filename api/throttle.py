"""Abuse throttle per API key: a fixed one-minute window.

With Redis, the count is shared by every process: INCR and the window's
expiry go in one MULTI/EXEC, so no request is lost or double-counted. Without
Redis (or while Redis is unreachable) each process counts on its own. This
protects the service from a runaway client; it is never quota enforcement
(quota lives in the database, under the ledger's locks).
"""

from __future__ import annotations

import logging
import math
import threading
import time

import redis
import redis.asyncio as aioredis

log = logging.getLogger(__name__)

WINDOW_S = 60
BREAKER_OPEN_S = 3.0
REDIS_TIMEOUT_S = 0.25


class Throttle:
    def __init__(self, limit_per_minute: int, redis_url: str | None) -> None:
        self.limit = limit_per_minute
        self._redis = (
            aioredis.Redis.from_url(
                redis_url, socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
            )
            if redis_url
            else None
        )
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._breaker_until = 0.0

    async def check(self, key_id: str) -> int | None:
        """Counts one request; returns seconds to wait when over the limit, else None."""
        if self.limit <= 0:
            return None
        now = time.time()
        window = int(now // WINDOW_S)
        retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
        count = await self._count_in_redis(key_id, window)
        if count is None:
            count = self._count_locally(key_id, window)
        return retry_after if count > self.limit else None

    async def _count_in_redis(self, key_id: str, window: int) -> int | None:
        if self._redis is None or time.monotonic() < self._breaker_until:
            return None
        key = f"tpp:rl:{key_id}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, WINDOW_S + 5)
                count, _ = await pipe.execute()
            return int(count)
        except (redis.RedisError, OSError) as exc:
            log.warning("throttle store unavailable (%s); counting in process", exc)
            self._breaker_until = time.monotonic() + BREAKER_OPEN_S
            return None

    def _count_locally(self, key_id: str, window: int) -> int:
        with self._lock:
            if len(self._counts) > 10_000:  # forget finished windows
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            count = self._counts.get((key_id, window), 0) + 1
            self._counts[(key_id, window)] = count
            return count

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
