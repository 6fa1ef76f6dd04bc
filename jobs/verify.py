"""Job: walk the hash chain from the last verified checkpoint.

Each run checks only the entries appended since the last `verified`
checkpoint (constant work per run) and stores a new checkpoint at the head
it reached. `full=True` (CLI `--full`) starts from genesis instead, which
also catches tampering before the checkpoint; `ledger verify` always does.
A broken chain is a failed run plus a `chain_broken` finding naming the seq.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.context import JobContext, JobResult
from jobs.records import record_finding
from ledger.audit import verify_chain
from ledger.chain import GENESIS_HASH
from ledger.store.job_models import ChainCheckpoint

CHECKPOINT = ChainCheckpoint.__table__  # type: ignore[attr-defined]


def last_checkpoint(engine: sa.Engine, kind: str) -> tuple[int, str]:
    with Session(engine) as session:
        row = session.execute(
            sa.select(CHECKPOINT.c.seq, CHECKPOINT.c.hash)
            .where(CHECKPOINT.c.kind == kind).order_by(CHECKPOINT.c.seq.desc()).limit(1)
        ).first()
    return (row.seq, row.hash) if row is not None else (0, GENESIS_HASH)


def verify(ctx: JobContext) -> JobResult:
    full = bool(ctx.options.get("full"))
    start_seq, start_hash = (0, GENESIS_HASH) if full else last_checkpoint(ctx.engine, "verified")
    report = verify_chain(ctx.engine, start_seq, start_hash)
    now = ctx.now()
    figures = {"from_seq": start_seq, "checked": report.entries, "head": report.head}
    if not report.ok:
        with Session(ctx.write_engine) as session, session.begin():
            record_finding(session, kind="chain_broken", subject=f"seq {report.first_bad_seq}",
                           job="verify_chain", now=now, run_id=ctx.run_id,
                           details={"seq": report.first_bad_seq, "reason": report.reason})
        return JobResult.failed(**figures, first_bad_seq=report.first_bad_seq,
                                reason=report.reason)
    head_seq = start_seq + report.entries
    if report.entries:
        with Session(ctx.write_engine) as session, session.begin():
            exists = session.execute(sa.select(CHECKPOINT.c.id).where(
                CHECKPOINT.c.kind == "verified", CHECKPOINT.c.seq == head_seq)).first()
            if exists is None:
                session.execute(sa.insert(CHECKPOINT).values(
                    kind="verified", seq=head_seq, hash=report.head, at=now))
    return JobResult.ok(**figures, head_seq=head_seq)
