"""Headroom cache: whole headroom answers, in Redis when configured, else in process.

The database is the truth; this cache only saves reads, and the reservation
path never looks at it. Why an answer can be trusted when read back:

- **Versioned invalidation, not delete.** Each bucket has a version token
  (`v:<kind>|<key>|<period>`), each UVEU operator's footprint set has one
  (`vf:<operator>`), and reference data has one (`ref`). A cached answer
  stores the tokens it was computed under; it is served only while every one
  is still current. A ledger commit replaces the tokens of the buckets it
  changed (Ledger.on_commit); a reference PUT replaces `ref`. Tokens are read
  BEFORE the database, so an answer computed from balances older than a
  commit always carries a token that commit replaced: a slow reader can
  never store a stale answer under a current token. Tokens are random
  (uuid4), not counters, so a token lost to eviction cannot come back equal.
- **Expiry instants.** A hold counts for nothing from its expiry instant,
  with no commit to replace any token. So each answer also stores
  `valid_until`, the earliest expiry of any active hold it counted, and is a
  miss from that instant on (and before its own computation time). Between
  the computation and `valid_until` no hold in it can lapse, so the numbers
  cannot change without a commit.
- **The date.** Years, quarters, tiers and licence validity change with the
  UTC date, so the date is part of the answer's key.
- **Redis down: a bounded age.** Every Redis call has short timeouts; a
  failure opens a breaker for a few seconds, during which this process reads
  the database and keeps the token replacements it could not send
  (`_pending`). They are replayed before it uses the cache again, and until
  they have reached Redis it serves nothing from the cache (neither path).
  But another process cannot see them: a process that cannot reach Redis
  (paused, killed, restarted from a snapshot, cut off from it alone) or dies
  before replaying leaves others holding answers whose tokens are still
  current. So every answer also carries `fresh_until`: the wall time
  (`time.time()`) taken BEFORE its tokens and its database read, plus
  ANSWER_TTL_S. Both paths compare it with the serving process's wall clock,
  and Redis drops the answer at the same moment (PX, the remaining time).
  An answer that misses a commit read the database before that commit, so
  after that commit was acknowledged it is served for less than ANSWER_TTL_S:
  that is the staleness bound after any Redis fault, whichever process wrote
  and even if it died (plus any clock difference between the hosts of the
  API processes; none on one host). Under normal operation the tokens keep
  every answer exact; the age only costs a recomputation per query every
  ANSWER_TTL_S at most.
- **Without Redis** the same logic runs on an in-process store: exact for
  one process; several worker processes should share a Redis.
- **The hot path.** Each process remembers the answers it last stored or
  served (raw document and its tokens). A repeated query then costs one MGET
  of the answer and its tokens, awaited on the event loop: it is served only
  if the stored document and every token are byte-for-byte what was
  remembered, and before its `fresh_until`, so it is exactly as current as
  the full check.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import redis
import redis.asyncio as redis_asyncio

from ledger import metrics
from ledger.policy.types import FOOTPRINT, BucketKey
from ledger.queries import BucketState, HeadroomPlan, LedgerReader

log = logging.getLogger(__name__)

ANSWER_TTL_S = 1.5  # the staleness bound after a Redis fault (see above)
TOKEN_TTL_S = 7 * 86400
MIN_STORE_S = 0.05  # an answer with less life left than this is not stored
BREAKER_OPEN_S = 3.0
REDIS_TIMEOUT_S = 0.25


class KeyValue(Protocol):
    def mget(self, keys: Sequence[str]) -> list[str | None]: ...
    async def amget(self, keys: Sequence[str]) -> list[str | None]: ...
    def set_many(self, items: dict[str, str], ttl_s: float) -> None: ...
    def set_missing(self, items: dict[str, str], ttl_s: int) -> None: ...


class MemoryKeyValue:
    """The in-process store: a dict with expiry times, safe across threads."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def mget(self, keys: Sequence[str]) -> list[str | None]:
        now = time.monotonic()
        with self._lock:
            out = []
            for key in keys:
                item = self._data.get(key)
                out.append(item[0] if item is not None and item[1] > now else None)
            return out

    async def amget(self, keys: Sequence[str]) -> list[str | None]:
        return self.mget(keys)  # a dict lookup: no need to leave the event loop

    def set_many(self, items: dict[str, str], ttl_s: float) -> None:
        until = time.monotonic() + ttl_s
        with self._lock:
            if len(self._data) > 100_000:  # bound memory: drop what has expired
                now = time.monotonic()
                self._data = {k: v for k, v in self._data.items() if v[1] > now}
            for key, value in items.items():
                self._data[key] = (value, until)

    def set_missing(self, items: dict[str, str], ttl_s: int) -> None:
        present = self.mget(list(items))
        self.set_many({k: v for (k, v), p in zip(items.items(), present, strict=True)
                       if p is None}, ttl_s)


class RedisKeyValue:
    """Redis with short timeouts: a slow or dead Redis costs at most a fraction of a second."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S,
            decode_responses=True, retry_on_timeout=False,
        )
        # The asyncio client is made on first use, on the loop that serves requests.
        self._async: redis_asyncio.Redis | None = None

    def mget(self, keys: Sequence[str]) -> list[str | None]:
        return [None if v is None else str(v) for v in self.client.mget(list(keys))] if keys else []

    async def amget(self, keys: Sequence[str]) -> list[str | None]:
        if self._async is None:
            self._async = redis_asyncio.Redis.from_url(
                self.url, socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S, decode_responses=True,
            )
        values = await self._async.mget(list(keys))
        return [None if v is None else str(v) for v in values]

    def set_many(self, items: dict[str, str], ttl_s: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(key, value, px=max(1, int(ttl_s * 1000)))
        pipe.execute()

    def set_missing(self, items: dict[str, str], ttl_s: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(key, value, ex=ttl_s, nx=True)
        pipe.execute()


def bucket_token_key(bucket: BucketKey) -> str:
    return f"v:{bucket.kind}|{bucket.key}|{bucket.period}"


def footprint_token_key(operator_id: str) -> str:
    return f"vf:{operator_id}"


REFERENCE_TOKEN = "ref"  # noqa: S105 (a cache key name, not a secret)


class HeadroomCache:
    """Headroom answers through a KeyValue store, falling back to the database."""

    def __init__(self, reader: LedgerReader, store: KeyValue, namespace: str) -> None:
        self.reader = reader
        self.store = store
        self.prefix = f"tpp:{namespace}:"
        self._breaker_until = 0.0
        self._pending: set[str] = set()  # token keys whose replacement did not reach the store
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        # answer key -> (raw stored document, token keys, token values, the answer,
        # computed_at, valid_until, fresh_until): what this process last stored or served.
        self._memo: dict[str, tuple[str, list[str], list[str | None], dict[str, Any],
                                    datetime, datetime | None, float]] = {}

    # -- the hot path ------------------------------------------------------------------

    async def remembered(
        self, country: str, operator_id: str | None, consignee_id: str | None, at: datetime
    ) -> dict[str, Any] | None:
        """The answer this process remembers for the query, if one MGET proves it still
        current; None sends the caller to `headroom` (the full path)."""
        if time.monotonic() < self._breaker_until or self._pending:
            return None
        answer_key = self._answer_key(country, operator_id, consignee_id, at.date())
        memo = self._memo.get(answer_key)
        if memo is None:
            return None
        raw, token_keys, token_values, answer, computed_at, valid_until, fresh_until = memo
        if computed_at > at or (valid_until is not None and at >= valid_until):
            return None
        if time.time() >= fresh_until:  # too old to vouch for after a Redis fault
            return None
        try:
            values = await self.store.amget([answer_key, *token_keys])
        except (redis.RedisError, OSError) as exc:
            self._trip(exc)
            return None
        if values[0] != raw or values[1:] != token_values:
            return None
        self.hits += 1
        metrics.CACHE_LOOKUPS.labels("hit").inc()
        return answer

    def _remember(self, answer_key: str, raw: str, doc: dict[str, Any]) -> None:
        if len(self._memo) > 10_000:
            self._memo.clear()
        token_keys = sorted(doc["tokens"])
        self._memo[answer_key] = (
            raw,
            [self.prefix + k for k in token_keys],
            [doc["tokens"][k] for k in token_keys],
            doc["answer"],
            datetime.fromisoformat(doc["computed_at"]),
            datetime.fromisoformat(doc["valid_until"]) if doc["valid_until"] else None,
            float(doc["fresh_until"]),
        )

    # -- reads ---------------------------------------------------------------------

    def headroom(
        self, country: str, operator_id: str | None, consignee_id: str | None, at: datetime
    ) -> dict[str, Any]:
        """The headroom answer at `at`: cached when provably current, else from the database."""
        # Wall time before any token or database read: the answer's age counts from here.
        fresh_until = time.time() + ANSWER_TTL_S
        if not self._store_usable():
            metrics.CACHE_LOOKUPS.labels("bypass").inc()
            return self.reader.headroom(country, operator_id, consignee_id, at)
        answer_key = self._answer_key(country, operator_id, consignee_id, at.date())
        try:
            cached = self._cached_answer(answer_key, at)
            if cached is not None:
                self.hits += 1
                metrics.CACHE_LOOKUPS.labels("hit").inc()
                return cached
            ref = self._tokens([REFERENCE_TOKEN])
        except redis.RedisError as exc:
            self._trip(exc)
            metrics.CACHE_LOOKUPS.labels("bypass").inc()
            return self.reader.headroom(country, operator_id, consignee_id, at)
        self.misses += 1
        metrics.CACHE_LOOKUPS.labels("miss").inc()
        plan = self.reader.headroom_plan(country, operator_id, consignee_id, at)
        try:
            tokens = ref | self._tokens(self._token_keys(plan))
        except redis.RedisError as exc:
            self._trip(exc)
            tokens = {}
        states = self.reader.bucket_states(plan.buckets, plan.footprint_of, at)
        answer = self.reader.headroom_from(plan, states, at)
        if tokens:
            self._store_answer(answer_key, answer, tokens, states, at, fresh_until)
        return answer

    def _cached_answer(self, answer_key: str, at: datetime) -> dict[str, Any] | None:
        raw = self.store.mget([answer_key])[0]
        if raw is None:
            return None
        doc = json.loads(raw)
        if not isinstance(doc.get("fresh_until"), float) or time.time() >= doc["fresh_until"]:
            return None  # too old to vouch for after a Redis fault (or an older format)
        if datetime.fromisoformat(doc["computed_at"]) > at:
            return None
        if doc["valid_until"] is not None and at >= datetime.fromisoformat(doc["valid_until"]):
            return None  # a hold it counted has lapsed since
        keys = list(doc["tokens"])
        current = self.store.mget([self.prefix + k for k in keys])
        if any(doc["tokens"][k] != c for k, c in zip(keys, current, strict=True)):
            return None
        self._remember(answer_key, raw, doc)
        answer: dict[str, Any] = doc["answer"]
        return answer

    def _store_answer(
        self,
        answer_key: str,
        answer: dict[str, Any],
        tokens: dict[str, str],
        states: dict[BucketKey, BucketState],
        at: datetime,
        fresh_until: float,
    ) -> None:
        remaining = fresh_until - time.time()
        if remaining < MIN_STORE_S:  # a slow computation: not worth storing
            return
        expiries = [s.next_expiry for s in states.values() if s.next_expiry is not None]
        doc = {
            "computed_at": at.isoformat(),
            "fresh_until": fresh_until,
            "valid_until": min(expiries).isoformat() if expiries else None,
            "tokens": tokens,
            "answer": answer,
        }
        raw = json.dumps(doc)
        try:
            self.store.set_many({answer_key: raw}, remaining)
        except redis.RedisError as exc:
            self._trip(exc)
            return
        self._remember(answer_key, raw, doc)

    def _tokens(self, keys: Iterable[str]) -> dict[str, str]:
        """Current tokens of `keys`, creating the missing ones (Redis SET NX)."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        full = [self.prefix + k for k in keys]
        values = self.store.mget(full)
        missing = {f: uuid.uuid4().hex for f, v in zip(full, values, strict=True) if v is None}
        if missing:
            self.store.set_missing(missing, TOKEN_TTL_S)
            values = self.store.mget(full)
        if any(v is None for v in values):  # evicted between the calls: do not cache
            raise redis.RedisError("token vanished")
        return {k: str(v) for k, v in zip(keys, values, strict=True)}

    @staticmethod
    def _token_keys(plan: HeadroomPlan) -> list[str]:
        return [bucket_token_key(b) for b in plan.buckets] + [
            footprint_token_key(op) for op in plan.footprint_of
        ]

    def _answer_key(
        self, country: str, operator_id: str | None, consignee_id: str | None, on: date
    ) -> str:
        rs = self.reader.rule_set
        return (f"{self.prefix}h:{rs.name}@{rs.version}|{on.isoformat()}|{country}|"
                f"{operator_id or ''}|{consignee_id or ''}")

    # -- invalidation ----------------------------------------------------------------

    def buckets_changed(self, changed: set[BucketKey]) -> None:
        """Ledger.on_commit listener: replaces the tokens of every changed bucket."""
        keys = {bucket_token_key(b) for b in changed}
        keys |= {footprint_token_key(b.operator_id) for b in changed
                 if b.kind == FOOTPRINT and b.operator_id}
        self._replace(keys)

    def reference_changed(self) -> None:
        """After a PUT of an operator, consignee or licence: every answer may list others."""
        self._replace({REFERENCE_TOKEN})

    def _replace(self, keys: set[str]) -> None:
        """Runs before the write is acknowledged: on return, the new tokens are in the
        store or `keys` are pending (and this process serves nothing cached until they
        have been replayed)."""
        if not self._store_usable():  # replays what is pending first
            with self._lock:
                self._pending |= keys
            return
        try:
            self.store.set_many({self.prefix + k: uuid.uuid4().hex for k in keys}, TOKEN_TTL_S)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._pending |= keys
            self._trip(exc)

    # -- the breaker ------------------------------------------------------------------

    def _store_usable(self) -> bool:
        if time.monotonic() < self._breaker_until:
            return False
        if self._pending:
            # Pending keys stay pending until they are in the store: until then neither
            # path in this process serves a cached answer.
            with self._lock:
                pending = set(self._pending)
            try:  # replay replacements that failed while the store was away
                self.store.set_many({self.prefix + k: uuid.uuid4().hex for k in pending},
                                    TOKEN_TTL_S)
            except (redis.RedisError, OSError) as exc:
                self._trip(exc)
                return False
            with self._lock:  # only once they are in the store
                self._pending -= pending
        return True

    def _trip(self, exc: Exception) -> None:
        log.warning("headroom cache store unavailable (%s); reading the database", exc)
        metrics.CACHE_BREAKER_TRIPS.inc()
        self._breaker_until = time.monotonic() + BREAKER_OPEN_S

    @property
    def breaker_open(self) -> bool:
        """Whether reads bypass the store now (breaker open, or replacements pending)."""
        return time.monotonic() < self._breaker_until or bool(self._pending)


def build_headroom_cache(
    reader: LedgerReader, redis_url: str | None, namespace: str
) -> HeadroomCache:
    store: KeyValue = RedisKeyValue(redis_url) if redis_url else MemoryKeyValue()
    return HeadroomCache(reader, store, namespace=namespace)
