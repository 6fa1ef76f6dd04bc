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
  the full check. Concurrent requests for the same keys share an MGET, but
  only one sent after they arrived: while one is in flight, newcomers wait
  and then share the next (`_read_now`). An answer replaced meanwhile by a
  newer one is checked once more, against the newer one, by a new MGET.
- **One computation per answer key (single flight).** Answers age out together
  (every ANSWER_TTL_S), and each miss costs several queries; so in a process
  only one request computes a given key at a time (`answer`). A request that
  misses while that key's computation is in flight never takes its result as
  such: the computation may have read the database before the request arrived
  (before the client's own acknowledged write committed). It waits for it to
  end and retries the hot path, whose MGET is made after the request arrived
  and so proves the stored answer current, or computes itself (single-flighted
  again). It takes a computation's result directly only if that computation
  started after the request arrived (all its reads are later), for an instant
  of the same date (same key) no later than the request's, and no hold it
  counted lapses by the request's instant (`valid_until`): by the expiry
  argument above, the answer the request would have computed itself. A
  computation started for waiters runs at the earliest instant among them,
  so each of them can take it; after a few rounds a request computes alone.
  An answer the hot path serves within REFRESH_AHEAD_S of its `fresh_until`
  is recomputed in the background (the same single flight, stored like any
  answer), at the instant it was computed at, so that requests rarely wait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any, Protocol

import anyio
import anyio.to_thread
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
REFRESH_AHEAD_S = 0.4  # a remembered answer in use is recomputed this long before its age
MAX_FLIGHT_ROUNDS = 3  # computations a request waits for before it computes alone


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


class _Flight:
    """One computation of an answer key in progress in this process."""

    __slots__ = ("answer", "at", "done", "started", "valid_until", "waiters_at")

    def __init__(self, at: datetime) -> None:
        self.at = at  # the instant it computes the answer at
        self.started = time.monotonic()  # taken before any of its reads
        self.done = anyio.Event()
        self.answer: dict[str, Any] | None = None  # None until it succeeded
        self.valid_until: datetime | None = None
        self.waiters_at = at  # the earliest instant of the requests that waited for it

    def answer_for(self, arrived: float, at: datetime) -> dict[str, Any] | None:
        """This finished computation's answer, if a request that arrived at `arrived`
        (monotonic), for the instant `at`, may take it as its own (see the docstring)."""
        if (self.started >= arrived and self.at <= at
                and (self.valid_until is None or at < self.valid_until)):
            return self.answer
        return None


class _Read:
    """One hot-path MGET, shared by the requests that joined it before it was sent."""

    __slots__ = ("done", "values")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.values: list[str | None] | None = None  # None: not read (failed, cancelled)


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
        self._flights: dict[str, _Flight] = {}  # answer key -> its computation in flight
        self.shared = 0  # answers taken from another request's computation
        # Hot-path MGETs by key list: the one being gathered, and the one sent.
        self._reads_next: dict[tuple[str, ...], _Read] = {}
        self._reads_sent: dict[tuple[str, ...], _Read] = {}
        self._background: set[asyncio.Task[None]] = set()  # refreshes running
        self._hit_counter: Any = None

    # -- the request path --------------------------------------------------------------

    async def answer(
        self, country: str, operator_id: str | None, consignee_id: str | None, at: datetime
    ) -> dict[str, Any]:
        """The headroom answer at `at` for a request arriving now, on the event loop:
        the hot path, else one computation per answer key in this process."""
        arrived = time.monotonic()
        found = await self.remembered(country, operator_id, consignee_id, at)
        if found is not None:
            return found
        query = (country, operator_id, consignee_id)
        key = self._answer_key(country, operator_id, consignee_id, at.date())
        compute_at = at
        for _ in range(MAX_FLIGHT_ROUNDS):
            flight = self._flights.get(key)
            if flight is None:
                flight = self._start_flight(key, compute_at)
                await self._fly(flight, key, query, False)
                found = flight.answer_for(arrived, at)
                if found is not None:
                    return found
                break  # a hold lapsed between the waiters' instant and ours
            flight.waiters_at = min(flight.waiters_at, at)
            await flight.done.wait()
            found = flight.answer_for(arrived, at)
            if found is not None:
                self.shared += 1
                metrics.CACHE_LOOKUPS.labels("shared").inc()
                return found
            found = await self.remembered(country, operator_id, consignee_id, at)
            if found is not None:
                return found
            # The next computation starts after every waiter of this one arrived; at
            # their earliest instant, each of them can take its answer.
            compute_at = flight.waiters_at
        answer, _ = await anyio.to_thread.run_sync(
            self._compute, country, operator_id, consignee_id, at)
        return answer

    def _start_flight(self, key: str, at: datetime) -> _Flight:
        flight = self._flights[key] = _Flight(at)
        return flight

    async def _fly(
        self, flight: _Flight, key: str, query: tuple[str, str | None, str | None],
        refresh: bool,
    ) -> None:
        """Runs `flight` (registered by _start_flight) in a worker thread."""
        try:
            flight.answer, flight.valid_until = await anyio.to_thread.run_sync(
                self._compute, *query, flight.at, refresh)
        finally:
            if self._flights.get(key) is flight:
                del self._flights[key]
            flight.done.set()

    def _refresh_ahead(
        self, key: str, query: tuple[str, str | None, str | None], at: datetime
    ) -> None:
        """Recomputes a remembered answer in the background before its age runs out, so
        that no request waits for it then (one computation per key, as in `answer`).
        `at` is the instant the answer was computed at (same key, so same date): the new
        one then serves every request in progress that the old one could serve."""
        if key in self._flights:
            return
        flight = self._start_flight(key, at)

        async def refresh() -> None:
            try:
                await self._fly(flight, key, query, True)
            except Exception as exc:  # the next miss computes (and reports) it
                log.info("headroom refresh failed: %s", exc)

        task = asyncio.get_running_loop().create_task(refresh())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

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
        for _ in range(2):  # again once if the answer was replaced during the MGET
            if memo is None:
                return None
            raw, token_keys, token_values, answer, computed_at, valid_until, fresh_until = memo
            if computed_at > at or (valid_until is not None and at >= valid_until):
                return None
            if time.time() >= fresh_until:  # too old to vouch for after a Redis fault
                return None
            values = await self._read_now([answer_key, *token_keys])
            if values is None:
                return None
            if values[0] == raw and values[1:] == token_values:
                break
            newer = self._memo.get(answer_key)
            if newer is memo:
                return None
            memo = newer
        else:
            return None
        if fresh_until - time.time() < REFRESH_AHEAD_S:
            self._refresh_ahead(answer_key, (country, operator_id, consignee_id), computed_at)
        self.hits += 1
        if self._hit_counter is None:  # labels() takes a lock: once, in the serving process
            self._hit_counter = metrics.CACHE_LOOKUPS.labels("hit")
        self._hit_counter.inc()
        return answer

    async def _read_now(self, keys: list[str]) -> list[str | None] | None:
        """The values of `keys` from one MGET sent after the caller arrived (None: it
        failed). Callers asking for the same keys share it: one MGET per key list is
        in flight at a time, and those who ask meanwhile join the next one."""
        group = tuple(keys)
        read = self._reads_next.get(group)
        if read is not None:  # not sent yet: its answer is read after we arrived
            await read.done.wait()
            return read.values
        read = self._reads_next[group] = _Read()
        try:
            sent = self._reads_sent.get(group)
            if sent is not None:
                await sent.done.wait()
            del self._reads_next[group]  # whoever asks from here on joins the next one
            self._reads_sent[group] = read
            try:
                read.values = await self.store.amget(keys)
            except (redis.RedisError, OSError) as exc:
                self._trip(exc)
            finally:
                del self._reads_sent[group]
        finally:
            if self._reads_next.get(group) is read:  # cancelled before it was sent
                del self._reads_next[group]
            read.done.set()
        return read.values

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
        return self._compute(country, operator_id, consignee_id, at)[0]

    def _compute(
        self, country: str, operator_id: str | None, consignee_id: str | None, at: datetime,
        refresh: bool = False,
    ) -> tuple[dict[str, Any], datetime | None]:
        """`headroom`, and the instant from which the answer may differ with no commit
        (the earliest expiry of a hold it counted; None: none). `refresh`: a stored
        answer about to age out is not used (it is what is being replaced)."""
        # Wall time before any token or database read: the answer's age counts from here.
        fresh_until = time.time() + ANSWER_TTL_S
        if not self._store_usable():
            metrics.CACHE_LOOKUPS.labels("bypass").inc()
            return self._from_database(country, operator_id, consignee_id, at)
        answer_key = self._answer_key(country, operator_id, consignee_id, at.date())
        try:
            cached = self._cached_answer(answer_key, at,
                                         REFRESH_AHEAD_S + MIN_STORE_S if refresh else 0.0)
            if cached is not None:
                self.hits += 1
                metrics.CACHE_LOOKUPS.labels("hit").inc()
                return cached
            ref = self._tokens([REFERENCE_TOKEN])
        except redis.RedisError as exc:
            self._trip(exc)
            metrics.CACHE_LOOKUPS.labels("bypass").inc()
            return self._from_database(country, operator_id, consignee_id, at)
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
        valid_until = _valid_until(states)
        if tokens:
            self._store_answer(answer_key, answer, tokens, valid_until, at, fresh_until)
        return answer, valid_until

    def _from_database(
        self, country: str, operator_id: str | None, consignee_id: str | None, at: datetime
    ) -> tuple[dict[str, Any], datetime | None]:
        plan = self.reader.headroom_plan(country, operator_id, consignee_id, at)
        states = self.reader.bucket_states(plan.buckets, plan.footprint_of, at)
        return self.reader.headroom_from(plan, states, at), _valid_until(states)

    def _cached_answer(
        self, answer_key: str, at: datetime, min_age_left: float = 0.0
    ) -> tuple[dict[str, Any], datetime | None] | None:
        raw = self.store.mget([answer_key])[0]
        if raw is None:
            return None
        doc = json.loads(raw)
        if (not isinstance(doc.get("fresh_until"), float)
                or time.time() + min_age_left >= doc["fresh_until"]):
            return None  # too old to vouch for after a Redis fault (or an older format)
        if datetime.fromisoformat(doc["computed_at"]) > at:
            return None
        valid_until = (datetime.fromisoformat(doc["valid_until"])
                       if doc["valid_until"] is not None else None)
        if valid_until is not None and at >= valid_until:
            return None  # a hold it counted has lapsed since
        keys = list(doc["tokens"])
        current = self.store.mget([self.prefix + k for k in keys])
        if any(doc["tokens"][k] != c for k, c in zip(keys, current, strict=True)):
            return None
        self._remember(answer_key, raw, doc)
        answer: dict[str, Any] = doc["answer"]
        return answer, valid_until

    def _store_answer(
        self,
        answer_key: str,
        answer: dict[str, Any],
        tokens: dict[str, str],
        valid_until: datetime | None,
        at: datetime,
        fresh_until: float,
    ) -> None:
        remaining = fresh_until - time.time()
        if remaining < MIN_STORE_S:  # a slow computation: not worth storing
            return
        doc = {
            "computed_at": at.isoformat(),
            "fresh_until": fresh_until,
            "valid_until": valid_until.isoformat() if valid_until is not None else None,
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


def _valid_until(states: dict[BucketKey, BucketState]) -> datetime | None:
    """The earliest expiry of an active hold among `states` (None: no active hold)."""
    expiries = [s.next_expiry for s in states.values() if s.next_expiry is not None]
    return min(expiries) if expiries else None


def build_headroom_cache(
    reader: LedgerReader, redis_url: str | None, namespace: str
) -> HeadroomCache:
    store: KeyValue = RedisKeyValue(redis_url) if redis_url else MemoryKeyValue()
    return HeadroomCache(reader, store, namespace=namespace)
