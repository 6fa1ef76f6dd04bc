"""Job: store the Merkle tree nodes of entries committed since the last run.

Tree nodes (ledger.merkle_store) are filled here, after commit, instead of in
the write transaction: the write path stays as it was, and a proof against a
head not yet caught up computes that right edge from entries. Option
{"full": True} (CLI `ledger jobs run merkle_nodes --full`) also recomputes
every stored node from entries and records a `merkle_nodes_wrong` finding on a
mismatch (repair: `ledger merkle rebuild`). The table is a cache, not a trust
anchor: a wrong node can only make a proof fail its client's check.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from jobs.context import JobContext, JobResult
from jobs.records import record_finding
from ledger.merkle_store import catch_up, verify_nodes


def merkle_nodes(ctx: JobContext) -> JobResult:
    added = catch_up(ctx.engine, heartbeat=ctx.heartbeat)
    if not ctx.options.get("full"):
        return JobResult.ok(added=added)
    report = verify_nodes(ctx.engine)
    figures = {"added": added, "leaves": report.leaves, "checked": report.checked,
               "missing": len(report.missing), "wrong": len(report.wrong),
               "beyond": report.beyond}
    if report.ok:
        return JobResult.ok(**figures)
    seq = report.first_bad_seq()
    with Session(ctx.write_engine) as session, session.begin():
        record_finding(session, kind="merkle_nodes_wrong", subject=f"seq {seq}",
                       job="merkle_nodes", now=ctx.now(), run_id=ctx.run_id,
                       details={"first_bad_seq": seq, **figures,
                                "fix": "ledger merkle rebuild"})
    return JobResult.failed(**figures, first_bad_seq=seq)
