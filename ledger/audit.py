"""Reading the chain back: verification walks entries in seq order, streaming."""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.books import fold, pairs
from ledger.chain import GENESIS_HASH, ChainReport, ChainVerifier
from ledger.store.models import Entry
from ledger.verify_copy import WalkResult, copy_walk, copy_walk_usable, verify_range

ENTRY = Entry.__table__  # type: ignore[attr-defined]


def verify_chain(
    engine: sa.Engine, start_seq: int = 0, start_hash: str = GENESIS_HASH, batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """Checks every entry after `start_seq` (whose hash is `start_hash`): seq gapless,
    each prev_hash linking to the previous hash, each hash matching the contents.
    `progress(seq)`: called after each batch with the last seq checked.
    On PostgreSQL the rows come as COPY text (ledger.verify_copy); the answer is the
    same."""
    verifier = ChainVerifier(start_seq, start_hash)
    return _walk(engine, start_seq, None, verifier, progress, batch).report


def _walk(engine: sa.Engine, lo: int, hi: int | None, verifier: ChainVerifier | None,
          progress: Callable[[int], None] | None = None, batch: int = 5000,
          fast: bool | None = None) -> WalkResult:
    if copy_walk_usable(engine) if fast is None else fast:
        return copy_walk(engine, lo, hi, verifier, progress, batch)
    return _rows_walk(engine, lo, hi, verifier, progress, batch)


def _rows_walk(engine: sa.Engine, lo: int, hi: int | None, verifier: ChainVerifier | None,
               progress: Callable[[int], None] | None = None,
               batch: int = 5000) -> WalkResult:
    """The entries with lo < seq <= hi through SQLAlchemy rows, fed to `verifier`
    (None: one trusting the first entry's prev_hash, for a range stitched after)."""
    first_seq: int | None = None
    first_prev: str | None = None
    with Session(engine) as session:
        last = lo
        while True:
            query = sa.select(ENTRY).where(ENTRY.c.seq > last)
            if hi is not None:
                query = query.where(ENTRY.c.seq <= hi)
            rows = session.execute(query.order_by(ENTRY.c.seq).limit(batch)).all()
            if not rows:
                break
            if first_seq is None:
                first_seq, first_prev = rows[0].seq, rows[0].prev_hash
                if verifier is None:
                    verifier = ChainVerifier(rows[0].seq - 1, rows[0].prev_hash)
            assert verifier is not None
            for row in rows:
                if not verifier.feed(row):
                    return WalkResult(first_seq, first_prev, verifier.expected_seq - 1,
                                      verifier.report())
            last = rows[-1].seq
            if progress is not None:
                progress(last)
    if verifier is None:
        return WalkResult(None, None, lo, ChainReport(True, 0, "", None))
    return WalkResult(first_seq, first_prev, verifier.expected_seq - 1, verifier.report())


def _verify_range(url: str, lo: int, hi: int) -> WalkResult:
    """One worker's walk of seq (lo, hi] through SQLAlchemy rows (SQLite), trusting only
    the range's first prev_hash: `verify_chain_parallel` checks that link when it
    stitches the ranges. On PostgreSQL the workers run `ledger.verify_copy.verify_range`."""
    from ledger.store.engine import create_ledger_engine

    engine = create_ledger_engine(url, pool_size=1)
    try:
        return _rows_walk(engine, lo, hi, None)
    finally:
        engine.dispose()


def chain_head_seq(engine: sa.Engine) -> int:
    """The last entry's seq as chain_head records it (0: no entries); progress totals."""
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT seq FROM chain_head").scalar_one())


def verify_chain_parallel(
    engine: sa.Engine, processes: int = 2, min_entries: int = 200_000,
    progress: Callable[[int], None] | None = None, ranges_per_process: int = 4,
) -> ChainReport:
    """The same answer as `verify_chain` from genesis, computed by several processes on
    contiguous seq ranges (a few per process, so that a slow one does not hold the
    rest back) and stitched: range k must start where range k-1 ended (its first
    entry's seq follows the last entry before it and its first prev_hash equals that
    entry's hash). Small ledgers, and one process, take the plain walk.
    `progress(entries)`: entries checked so far."""
    head = chain_head_seq(engine)
    if processes < 2 or head < min_entries:
        return verify_chain(engine, progress=progress)
    url = engine.url.render_as_string(hide_password=False)
    fast = copy_walk_usable(engine)
    count = max(processes * ranges_per_process, 1)
    cuts = [head * i // count for i in range(count + 1)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        futures = {pool.submit(verify_range if fast else _verify_range, url, lo, hi): hi - lo
                   for lo, hi in itertools.pairwise(cuts)}
        done = 0
        for future in as_completed(futures):
            future.result()
            done += futures[future]
            if progress is not None:
                progress(done)
        parts = [future.result() for future in futures]
    verifier, report = stitch(parts)
    if report is not None:
        return report
    # Entries past the head read at the start (appended while the workers ran, or
    # past a chain_head that lags): walked on from the stitched state.
    return _walk(engine, cuts[-1], None, verifier, progress, fast=fast).report


def stitch(parts: list[WalkResult]) -> tuple[ChainVerifier, ChainReport | None]:
    """Joins range walks, in seq order, into the plain walk's answer: a failure report,
    or (None and) a verifier at the end of the last range, to walk on from."""
    verifier = ChainVerifier()
    for part in parts:
        if part.first_seq is None:
            continue  # an empty range: a gap, named by the next entry found (if any)
        if part.first_seq != verifier.expected_seq:
            return verifier, ChainReport(
                False, verifier.count, verifier.head, verifier.expected_seq,
                f"gap: expected seq {verifier.expected_seq}, found {part.first_seq}")
        if part.first_prev_hash != verifier.head:
            return verifier, ChainReport(False, verifier.count, verifier.head,
                                         verifier.expected_seq,
                                         "prev_hash does not match the previous entry's hash")
        # The range's walk started where the plain walk stands here: its answer is the
        # plain walk's for these entries.
        report = part.report
        if not report.ok:
            return verifier, ChainReport(False, verifier.count + report.entries,
                                         report.head, report.first_bad_seq, report.reason)
        verifier.count += report.entries
        verifier.head = report.head
        verifier.expected_seq = part.last_seq + 1
    return verifier, None


def balances_from_entries(engine: sa.Engine) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(committed, held) per bucket as the entries alone say: the truth the
    projection must equal. Streams the whole ledger: for jobs and tests, never
    for a request path."""
    with Session(engine) as session:
        rows = session.execute(
            sa.select(ENTRY.c.kind, ENTRY.c.draws).execution_options(yield_per=5000)
        )
        return pairs(fold(rows))


def projected_balances(engine: sa.Engine) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(committed, held) per bucket as the balance projection stores them."""
    from ledger.store.models import Bucket

    bucket = Bucket.__table__  # type: ignore[attr-defined]
    with Session(engine) as session:
        rows = session.execute(
            sa.select(bucket.c.kind, bucket.c.key, bucket.c.period, bucket.c.committed,
                      bucket.c.held)
        ).all()
    return {(r.kind, r.key, r.period): (r.committed, r.held) for r in rows}
