"""Every Prometheus metric of the service, defined once (prometheus-client).

The ledger, the jobs and the API record into these; `api/metrics.py` serves them at
`GET /metrics` together with the gauges computed at scrape time (bucket use ratio,
cache breaker). Labels are always bounded sets: route templates (never raw paths or
ids), outcomes, paths, constraints, job names.

Several worker processes (`ledger serve --workers N`, gunicorn): set
`PROMETHEUS_MULTIPROC_DIR` to an empty folder shared by the workers (and emptied at
each start); every process then writes its samples there and `/metrics` sums them
(prometheus-client's multiprocess mode). Without it, each process reports its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram, disable_created_metrics

disable_created_metrics()  # no `*_created` series beside every counter and histogram

# -- HTTP ------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "ledger_http_requests_total", "HTTP requests answered, by route template and status.",
    ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "ledger_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

# -- reservations ----------------------------------------------------------------------

RESERVATIONS = Counter(
    "ledger_reservations_total",
    "Reservation commands decided by the writer, by outcome (held, replayed, denied, "
    "invalid, unavailable, error) and path (the decision paths of the held lines, "
    "joined with '+': lpp, license, tier1, uveu, nveu; 'none' when nothing was held).",
    ["outcome", "path"])
DENIALS = Counter(
    "ledger_denials_total",
    "Violations of denied reservations, by constraint (a bucket kind or a rule).",
    ["constraint"])

# -- group commit ----------------------------------------------------------------------

GROUP_COMMIT_BATCH = Histogram(
    "ledger_group_commit_batch_size", "Commands per group-commit transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
GROUP_COMMIT_WAIT = Histogram(
    "ledger_group_commit_wait_seconds",
    "Time a command waited in the group-commit queue before its transaction began.",
    buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
GROUP_COMMIT_SECONDS = Histogram(
    "ledger_group_commit_transaction_seconds",
    "Duration of one group-commit transaction (decide, write, commit).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

# -- headroom cache --------------------------------------------------------------------

CACHE_LOOKUPS = Counter(
    "ledger_headroom_cache_lookups_total",
    "Headroom answers: hit (served from the cache), miss (computed and stored), "
    "bypass (breaker open: read from the database), shared (another request's "
    "computation, started after this one arrived).",
    ["result"])
CACHE_BREAKER_TRIPS = Counter(
    "ledger_headroom_cache_breaker_trips_total",
    "Times the cache store (Redis) failed and opened the breaker.")
# ledger_headroom_cache_breaker_open (gauge, 0/1) is computed at scrape time.

# -- jobs ------------------------------------------------------------------------------

JOB_RUNS = Counter(
    "ledger_job_runs_total", "Scheduled or manual job runs, by job and outcome "
    "(ok, failed, skipped).", ["job", "outcome"])
JOB_SECONDS = Histogram(
    "ledger_job_run_duration_seconds", "Duration of job runs, by job.", ["job"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900))

# ledger_bucket_use_ratio{kind,key,period} (gauge) is computed at scrape time.


def reservation_path(paths: Iterable[str]) -> str:
    """The `path` label of a held reservation: its lines' distinct paths, sorted."""
    return "+".join(sorted(set(paths))) or "none"
