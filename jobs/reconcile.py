"""Job: recompute every bucket from the entries and report drift in the projection.

The entries are the truth; `bucket.committed` / `bucket.held` are a projection
of them. Both are read in ONE snapshot (REPEATABLE READ on PostgreSQL; a
SQLite read transaction is a snapshot), so concurrent writes never show up
as false drift.

Repair (`--repair`, or LEDGER_RECONCILE_REPAIR=true for scheduled runs)
moves the projection back to the entries through `Ledger.repair_projection`,
inside the ledger's write transaction and lock, and records each change as a
`projection_repaired` finding. No entry is ever written, updated or deleted:
a drifted projection is not a movement of quota, so a correcting entry
would make the entries (the truth) wrong instead.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.cache_rebuild import invalidate_all
from jobs.context import JobContext, JobResult
from jobs.records import record_finding
from ledger.books import fold, pairs
from ledger.store.models import Bucket, ChainHead, Entry

ENTRY = Entry.__table__  # type: ignore[attr-defined]
BUCKET = Bucket.__table__  # type: ignore[attr-defined]
CHAIN_HEAD = ChainHead.__table__  # type: ignore[attr-defined]
Key = tuple[str, str, str]


Balances = dict[Key, tuple[int, int]]


def snapshot(engine: sa.Engine) -> tuple[int, Balances, Balances]:
    """(head seq, truth from entries, projection) as of one consistent instant."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    with conn, Session(bind=conn) as session:
        head = int(session.execute(sa.select(CHAIN_HEAD.c.seq)).scalar_one())
        truth = pairs(fold(session.execute(
            sa.select(ENTRY.c.kind, ENTRY.c.draws).where(ENTRY.c.seq <= head)
            .execution_options(yield_per=5000)
        )))
        projection = {
            (r.kind, r.key, r.period): (r.committed, r.held)
            for r in session.execute(sa.select(BUCKET))
        }
    return head, truth, projection


def _pair(value: tuple[int, int]) -> dict[str, int]:
    return {"committed": value[0], "held": value[1]}


def reconcile(ctx: JobContext) -> JobResult:
    repair = bool(ctx.options.get("repair", ctx.settings.reconcile_repair))
    head, truth, projection = snapshot(ctx.engine)
    drifted: dict[Key, tuple[int, int]] = {}
    missing: list[Key] = []
    for key in sorted(set(truth) | set(projection)):
        want = truth.get(key, (0, 0))
        if key not in projection:
            if want != (0, 0):
                missing.append(key)
        elif projection[key] != want:
            drifted[key] = want
    now = ctx.now()
    new_findings = 0
    with Session(ctx.write_engine) as session, session.begin():
        for key, want in drifted.items():
            details: dict[str, Any] = {"bucket": list(key), "as_of_seq": head,
                                       "projection": _pair(projection[key]),
                                       "entries": _pair(want)}
            new_findings += record_finding(
                session, kind="projection_drift", subject=":".join(key), job="reconcile",
                details=details, now=now, run_id=ctx.run_id,
                identity=[projection[key], want])
        for key in missing:
            new_findings += record_finding(
                session, kind="projection_missing", subject=":".join(key), job="reconcile",
                details={"bucket": list(key), "entries": _pair(truth[key])}, now=now,
                run_id=ctx.run_id, identity=truth[key])
    repaired = 0
    if repair and drifted:
        repairs = ctx.ledger.repair_projection(drifted, as_of_seq=head)
        repaired = len(repairs)
        if repaired:
            # Cached headroom answers may show the drifted numbers: drop them all.
            invalidate_all(ctx.settings)
        with Session(ctx.write_engine) as session, session.begin():
            for fix in repairs:
                record_finding(
                    session, kind="projection_repaired", subject=":".join(fix.bucket),
                    job="reconcile", now=now, run_id=ctx.run_id,
                    details={"bucket": list(fix.bucket), "before": _pair(fix.before),
                             "after": _pair(fix.after), "at": now.isoformat()},
                    identity=[fix.before, fix.after, now.isoformat()])
    figures = {"buckets": len(set(truth) | set(projection)), "as_of_seq": head,
               "drift": len(drifted), "missing": len(missing), "repaired": repaired,
               "new_findings": new_findings}
    return JobResult.ok(**figures)
