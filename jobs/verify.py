"""Jobs: walk the hash chain, incrementally (`verify_chain`) and in full (`verify_chain_full`).

The incremental run checks only the entries appended since the last `verified`
checkpoint (constant work per run) and stores a new checkpoint at the head it
reached. It cannot be fooled by a rollback: it first checks that the database
still reaches the last verified checkpoint and the last head in the witness
file (LEDGER_WITNESS_FILE) with the same hashes there, that chain_head names the
last entry, and (with a signing key) that no entry lies past the last signed
head. The full run (daily by default; CLI `--full`) walks from genesis, which
also catches edits before the checkpoint, and checks every stored signed head
(signature, hash, Merkle root) and every witnessed head.

A failure is a failed run plus a `chain_broken` finding naming the seq.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.context import JobContext, JobResult
from jobs.records import record_finding
from ledger.audit import verify_chain
from ledger.chain import GENESIS_HASH
from ledger.heads import (
    ENTRY,
    SIGNED_HEAD,
    KeyRing,
    Problem,
    SignedHead,
    check_heads,
    read_witness,
)
from ledger.store.job_models import ChainCheckpoint
from ledger.store.models import ChainHead

CHECKPOINT = ChainCheckpoint.__table__  # type: ignore[attr-defined]
CHAIN_HEAD = ChainHead.__table__  # type: ignore[attr-defined]


def last_checkpoint(engine: sa.Engine, kind: str) -> tuple[int, str]:
    with Session(engine) as session:
        row = session.execute(
            sa.select(CHECKPOINT.c.seq, CHECKPOINT.c.hash)
            .where(CHECKPOINT.c.kind == kind).order_by(CHECKPOINT.c.seq.desc()).limit(1)
        ).first()
    return (row.seq, row.hash) if row is not None else (0, GENESIS_HASH)


def _keys(ctx: JobContext) -> KeyRing:
    heads = ctx.ledger.heads
    if heads is not None:
        return heads.keys
    return KeyRing.load(ctx.settings.signing_key_path, ctx.settings.signing_public_keys)


def _witnessed(ctx: JobContext) -> list[SignedHead]:
    path = ctx.settings.witness_file
    if not path:
        return []
    try:
        return read_witness(path)
    except FileNotFoundError:
        return []


def _fail(ctx: JobContext, job: str, problem: Problem, **figures: Any) -> JobResult:
    with Session(ctx.write_engine) as session, session.begin():
        record_finding(session, kind="chain_broken", subject=f"seq {problem.seq}", job=job,
                       now=ctx.now(), run_id=ctx.run_id,
                       details={"seq": problem.seq, "kind": problem.kind,
                                "reason": problem.message})
    return JobResult.failed(**figures, first_bad_seq=problem.seq, problem=problem.kind,
                            reason=problem.message)


def anchors(ctx: JobContext, start_seq: int, start_hash: str) -> Problem | None:
    """What the incremental run checks before walking: the database still reaches the
    last verified checkpoint and the last witnessed head with the same hashes there;
    chain_head names the last entry; nothing past the last signed head is unsigned."""
    keys = _keys(ctx)
    witnessed = _witnessed(ctx)
    marks: list[tuple[str, int, str]] = [("the last verified checkpoint", start_seq, start_hash)]
    if witnessed:
        last = max(witnessed, key=lambda h: h.seq)
        reason = keys.check(last)
        if reason is not None:
            return Problem("signature", last.seq, f"witnessed head at seq {last.seq}: {reason}")
        marks.append(("the witness", last.seq, last.hash))
    with Session(ctx.engine) as session:
        end = session.execute(sa.select(sa.func.max(ENTRY.c.seq))).scalar() or 0
        head = session.execute(sa.select(CHAIN_HEAD.c.seq, CHAIN_HEAD.c.hash)).one()
        signed = session.execute(sa.select(sa.func.max(SIGNED_HEAD.c.seq))).scalar()
        for name, seq, want in marks:
            if seq == 0:
                continue
            if end < seq:
                return Problem("truncated", end + 1, f"the database ends at seq {end}; {name} "
                               f"{'has a signed head' if name == 'the witness' else 'is'} "
                               f"at seq {seq}")
            have = session.execute(sa.select(ENTRY.c.hash).where(ENTRY.c.seq == seq)).scalar()
            if have != want:
                return Problem("broken", seq, f"the entry at seq {seq} is not the one {name} "
                               "recorded: history was rewritten")
        if head.seq != end:
            return Problem("broken", min(head.seq, end) + 1,
                           f"chain_head says seq {head.seq} but the last entry is seq {end}")
        if keys.current is not None and signed is not None and end > signed:
            return Problem("unsigned", signed + 1, f"entries seq {signed + 1}..{end} are not "
                           "covered by any signed head (appended without the signing key)")
    return None


def verify(ctx: JobContext) -> JobResult:
    if ctx.options.get("full"):
        return verify_full(ctx)
    start_seq, start_hash = last_checkpoint(ctx.engine, "verified")
    figures: dict[str, Any] = {"from_seq": start_seq}
    problem = anchors(ctx, start_seq, start_hash)
    if problem is not None:
        return _fail(ctx, "verify_chain", problem, **figures, checked=0)
    report = verify_chain(ctx.engine, start_seq, start_hash)
    figures.update(checked=report.entries, head=report.head)
    if not report.ok:
        return _fail(ctx, "verify_chain", Problem("broken", report.first_bad_seq or 0,
                                                  report.reason or "broken"), **figures)
    head_seq = start_seq + report.entries
    if report.entries:
        _store_verified(ctx, head_seq, report.head)
    return JobResult.ok(**figures, head_seq=head_seq)


def verify_full(ctx: JobContext) -> JobResult:
    """From genesis: every entry's hash, every signed and witnessed head, and the anchors
    of the incremental run; the failure named is the one at the lowest seq."""
    report = verify_chain(ctx.engine)
    figures: dict[str, Any] = {"from_seq": 0, "checked": report.entries, "head": report.head,
                               "full": True}
    problems = [p for p in [anchors(ctx, *last_checkpoint(ctx.engine, "verified"))] if p]
    if not report.ok:
        problems.append(Problem("broken", report.first_bad_seq or 0, report.reason or "broken"))
    heads = check_heads(ctx.engine, _keys(ctx), _witnessed(ctx))
    figures.update(signed_heads=heads.signed_heads, witnessed_heads=heads.witnessed_heads)
    problems += heads.problems
    if problems:
        return _fail(ctx, "verify_chain_full", min(problems, key=lambda p: p.seq), **figures)
    if report.entries:
        _store_verified(ctx, report.entries, report.head)
    return JobResult.ok(**figures, head_seq=report.entries)


def _store_verified(ctx: JobContext, head_seq: int, head_hash: str) -> None:
    with Session(ctx.write_engine) as session, session.begin():
        exists = session.execute(sa.select(CHECKPOINT.c.id).where(
            CHECKPOINT.c.kind == "verified", CHECKPOINT.c.seq == head_seq)).first()
        if exists is None:
            session.execute(sa.insert(CHECKPOINT).values(
                kind="verified", seq=head_seq, hash=head_hash, at=ctx.now()))
