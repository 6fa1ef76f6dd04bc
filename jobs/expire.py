"""Job: write `expire` entries for holds past their time.

Headroom already ignores such holds from their expiry instant (lazy expiry);
this job records the fact in the chain, effective at the expiry instant.
A hold expires exactly at `expires_at` (expires_at <= now), not before.
"""

from __future__ import annotations

from jobs.context import JobContext, JobResult

CHUNK = 500  # holds per write transaction: short lock hold times for concurrent writers


def expire_holds(ctx: JobContext, chunk: int = CHUNK) -> JobResult:
    """Calls Ledger.expire_due in chunks until none is due (or the lock is lost)."""
    expired = chunks = 0
    while True:
        done = ctx.ledger.expire_due(limit=chunk)
        expired += done
        chunks += 1
        if done < chunk:
            break
        if not ctx.heartbeat():
            return JobResult.failed(expired=expired, chunks=chunks, error="leader lock lost")
    return JobResult.ok(expired=expired, chunks=chunks)
