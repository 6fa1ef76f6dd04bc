"""Every scheduled job, its default interval, and what it does."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.alerts import check_thresholds
from jobs.cache_rebuild import rebuild_cache
from jobs.context import Job
from jobs.expire import expire_holds
from jobs.merkle_nodes import merkle_nodes
from jobs.reconcile import reconcile
from jobs.shipments import watch_inbox
from jobs.signing import sign_checkpoint
from jobs.structuring import structuring
from jobs.verify import verify, verify_full
from ledger.settings import Settings


@dataclass(frozen=True)
class JobSpec:
    name: str
    run: Job
    every_seconds: int  # default; LEDGER_JOBS_INTERVALS overrides
    summary: str


JOBS: dict[str, JobSpec] = {spec.name: spec for spec in (
    JobSpec("expire_holds", expire_holds, 60, "write expire entries for holds past their time"),
    JobSpec("threshold_alerts", check_thresholds, 60,
            "record 80%/95% cap crossings, deliver them to webhooks"),
    JobSpec("shipments", watch_inbox, 300,
            "import feeds from the inbox; report unshipped commitments"),
    JobSpec("verify_chain", verify, 600, "walk the hash chain from the last verified checkpoint; "
            "fail on rollback below it or the witnessed head"),
    JobSpec("verify_chain_full", verify_full, 86400,
            "walk the whole chain and check every signed and witnessed head"),
    JobSpec("cache_rebuild", rebuild_cache, 900,
            "compare the Redis headroom cache with the database"),
    JobSpec("reconcile", reconcile, 3600, "recompute buckets from entries, report drift"),
    JobSpec("sign_checkpoint", sign_checkpoint, 3600, "sign the chain head with Ed25519"),
    JobSpec("merkle_nodes", merkle_nodes, 30,
            "store Merkle tree nodes of new entries (--full: check every stored node)"),
    JobSpec("structuring", structuring, 3600,
            "find consignees linked by address, officer or owner taking more than one LPP cap"),
)}


def intervals(settings: Settings) -> dict[str, int]:
    """Seconds between runs per job, after LEDGER_JOBS_INTERVALS; unknown names are refused."""
    unknown = set(settings.jobs_intervals) - set(JOBS)
    if unknown:
        raise ValueError(f"LEDGER_JOBS_INTERVALS names unknown jobs: {sorted(unknown)}")
    out = {name: spec.every_seconds for name, spec in JOBS.items()}
    for name, seconds in settings.jobs_intervals.items():
        if seconds < 1:
            raise ValueError(f"interval of {name} must be at least 1 second")
        out[name] = seconds
    return out
