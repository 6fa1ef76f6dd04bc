"""`GET /metrics` (Prometheus text format, no auth) and what feeds it from HTTP.

- `RequestContext` (ASGI middleware, first in the app's list) takes the request id
  from an incoming `X-Request-ID` (when it is a sane token) or makes one, binds it
  to structlog's context (so every log line of the request carries it) and notes
  when the request arrived;
- `before_send` (an app-level hook, so it also sees answers made by the exception
  handler: 401, 404, 429, ...) sets the `X-Request-ID` response header and, at the
  end of the body, counts the request and its latency by route *template*
  (`/v1/reservations/{reservation_id}/commit`), never the raw path;
- `ScrapeCollector` computes, at scrape time, the gauges that are a state rather
  than an event: `ledger_bucket_use_ratio` (one query over the bucket table, caps
  from `ledger.policy.caps.bucket_cap`) and `ledger_headroom_cache_breaker_open`.

Metric definitions live in `ledger.metrics`. `/metrics` is public, like `/health`:
in production bind it to an internal port or keep it off the public ingress.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from litestar import Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ledger import metrics
from ledger.policy.caps import bucket_cap
from ledger.policy.types import FOOTPRINT, LICENSE, BucketKey
from ledger.store.models import Bucket, License

if TYPE_CHECKING:
    from api.services import Services

log = structlog.get_logger("api.requests")
METRICS_PATH = "/metrics"
REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_IDS = random.Random()  # seeded from the OS once per process:
os.register_at_fork(after_in_child=_IDS.seed)  # a forked worker must not repeat ids
BUCKET = Bucket.__table__  # type: ignore[attr-defined]
LICENSE_T = License.__table__  # type: ignore[attr-defined]


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1").strip()
            return text if _SANE_ID.match(text) else None
    return None


def request_id_of(scope: Scope) -> str:
    """The request's id: set once per request (incoming or new), kept in scope state."""
    state = scope.setdefault("state", {})
    rid = state.get("request_id")
    if rid is None:
        # 128 random bits as 32 hex digits, for correlating logs (not a secret): from the
        # in-process generator, since a system call here releases the GIL, and the
        # event loop then waits for the writer thread to hand it back.
        rid = _incoming_request_id(scope) or f"{_IDS.getrandbits(128):032x}"
        state["request_id"] = rid
    return str(rid)


class RequestContext:
    """ASGI middleware: request id into the log context, arrival time into scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["started"] = time.perf_counter()
            structlog.contextvars.clear_contextvars()
            # Not reset on the way out: the app's exception handler, outside this
            # middleware but in the same task, logs with it too. Each request runs
            # in its own task (its own context), so nothing leaks between requests.
            structlog.contextvars.bind_contextvars(request_id=request_id_of(scope))
        await self.app(scope, receive, send)


async def before_send(message: Message, scope: Scope) -> None:
    """App-level send hook: the X-Request-ID header, and HTTP metrics at the body's end."""
    if scope["type"] != "http":
        return
    state = scope.setdefault("state", {})
    if message["type"] == "http.response.start":
        headers = list(message.get("headers") or [])
        headers.append((b"x-request-id", request_id_of(scope).encode("latin-1")))
        message["headers"] = headers
        state["status"] = message["status"]
    elif message["type"] == "http.response.body" and not message.get("more_body", False):
        if state.get("counted"):
            return
        state["counted"] = True
        route = scope.get("path_template") or "unmatched"
        method = scope.get("method", "GET")
        status = int(state.get("status", 0))
        metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
        started = state.get("started")
        elapsed = None if started is None else time.perf_counter() - started
        if elapsed is not None:
            metrics.HTTP_LATENCY.labels(method, route).observe(elapsed)
        if status >= 400:
            # One line per problem answer (2xx are counted, not logged: an access line
            # costs more than a headroom read; `ledger serve --access-log` adds them).
            log.log(logging.ERROR if status >= 500 else logging.INFO, "request",
                    request_id=request_id_of(scope), method=method, route=route,
                    path=scope.get("path"), status=status,
                    duration_ms=None if elapsed is None else round(elapsed * 1000, 2))


# -- the scrape -------------------------------------------------------------------------


class ScrapeCollector(Collector):
    """Gauges read at scrape time from the live apps of this process (usually one)."""

    def __init__(self) -> None:
        self._services: list[Services] = []  # by identity (Services is not hashable)
        self._lock = threading.Lock()

    def add(self, services: Services) -> None:
        with self._lock:
            self._services.append(services)

    def discard(self, services: Services) -> None:
        with self._lock:
            self._services = [s for s in self._services if s is not services]

    def describe(self) -> list[Any]:
        return [self._ratio_family(), self._breaker_family()]  # names only, no query

    @staticmethod
    def _ratio_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "ledger_bucket_use_ratio",
            "Committed + held TPP over the cap, per capped bucket (caps as the rule set in "
            "force gives them now; buckets with no cap or a zero cap are left out).",
            labels=["kind", "key", "period"])

    @staticmethod
    def _breaker_family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "ledger_headroom_cache_breaker_open",
            "1 while the headroom cache bypasses its store (Redis failed recently), else 0.")

    def collect(self) -> Iterator[Any]:
        with self._lock:
            live = self._services[-1:]  # the latest app: one per process in production
        ratio, breaker = self._ratio_family(), self._breaker_family()
        seen: set[tuple[str, str, str]] = set()
        for services in live:
            breaker.add_metric([], 1.0 if services.headroom.breaker_open else 0.0)
            for labels, value in bucket_use_ratios(services):
                if labels not in seen:
                    seen.add(labels)
                    ratio.add_metric(list(labels), value)
        yield ratio
        yield breaker


def bucket_use_ratios(services: Services) -> list[tuple[tuple[str, str, str], float]]:
    """Use ratio of every capped bucket: one query (buckets left-joined to licences)."""
    ledger = services.ledger
    query = (
        sa.select(BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period, BUCKET.c.operator_id,
                  BUCKET.c.country, BUCKET.c.committed, BUCKET.c.held,
                  LICENSE_T.c.tpp.label("licence_tpp"))
        .select_from(BUCKET.outerjoin(LICENSE_T, sa.and_(
            BUCKET.c.kind == LICENSE, LICENSE_T.c.id == BUCKET.c.key)))
        .where(BUCKET.c.kind != FOOTPRINT)
    )
    now = ledger.clock.now()
    with ledger.engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        key = BucketKey(row.kind, row.key, row.period, row.operator_id, row.country)
        licences = {row.key: row.licence_tpp} if row.licence_tpp is not None else {}
        cap = bucket_cap(ledger.rule_set, key, now, licences)
        if cap:  # no cap, or nothing grantable now: no ratio
            out.append(((row.kind, row.key, row.period), (row.committed + row.held) / cap))
    return out


SCRAPE = ScrapeCollector()
REGISTRY.register(SCRAPE)


def _registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(SCRAPE)
    return registry


@get(METRICS_PATH, include_in_schema=False, sync_to_thread=True)
def metrics_endpoint() -> Response[bytes]:
    """Prometheus text exposition of every ledger metric."""
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)
