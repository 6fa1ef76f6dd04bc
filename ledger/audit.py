"""Reading the chain back: verification walks entries in seq order, streaming."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.books import fold, pairs
from ledger.chain import GENESIS_HASH, ChainReport, ChainVerifier
from ledger.store.models import Entry

ENTRY = Entry.__table__  # type: ignore[attr-defined]


def verify_chain(
    engine: sa.Engine, start_seq: int = 0, start_hash: str = GENESIS_HASH, batch: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """Checks every entry after `start_seq` (whose hash is `start_hash`): seq gapless,
    each prev_hash linking to the previous hash, each hash matching the contents.
    `progress(seq)`: called after each batch with the last seq checked."""
    verifier = ChainVerifier(start_seq, start_hash)
    with Session(engine) as session:
        last = start_seq
        while True:
            rows = session.execute(
                sa.select(ENTRY).where(ENTRY.c.seq > last).order_by(ENTRY.c.seq).limit(batch)
            ).all()
            if not rows:
                break
            for row in rows:
                if not verifier.feed(row):
                    return verifier.report()
            last = rows[-1].seq
            if progress is not None:
                progress(last)
    return verifier.report()


@dataclass(frozen=True)
class RangeReport:
    """One worker's walk of seq (lo, hi], trusting only the first entry's prev_hash."""

    lo: int
    hi: int
    first_prev_hash: str | None  # None: the range's first entry is missing
    report: ChainReport


def _verify_range(url: str, lo: int, hi: int, batch: int = 5000) -> RangeReport:
    from ledger.store.engine import create_ledger_engine

    engine = create_ledger_engine(url, pool_size=1)
    try:
        with Session(engine) as session:
            first = session.execute(
                sa.select(ENTRY.c.prev_hash).where(ENTRY.c.seq == lo + 1)
            ).scalar_one_or_none()
            if first is None:
                return RangeReport(lo, hi, None, ChainReport(False, 0, "", lo + 1, "missing"))
            verifier = ChainVerifier(lo, first)
            last = lo
            while last < hi:
                rows = session.execute(
                    sa.select(ENTRY)
                    .where(ENTRY.c.seq > last, ENTRY.c.seq <= hi)
                    .order_by(ENTRY.c.seq)
                    .limit(batch)
                ).all()
                if not rows:
                    break
                for row in rows:
                    if not verifier.feed(row):
                        return RangeReport(lo, hi, first, verifier.report())
                last = rows[-1].seq
            report = verifier.report()
            if report.ok and last != hi:
                report = ChainReport(False, report.entries, report.head, last + 1, "missing")
            return RangeReport(lo, hi, first, report)
    finally:
        engine.dispose()


def chain_head_seq(engine: sa.Engine) -> int:
    """The last entry's seq as chain_head records it (0: no entries); progress totals."""
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT seq FROM chain_head").scalar_one())


def verify_chain_parallel(
    engine: sa.Engine, processes: int = 2, min_entries: int = 200_000,
    progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """The same answer as `verify_chain` from genesis, computed by several processes on
    contiguous seq ranges and stitched: range k must start where range k-1 ended
    (its first prev_hash equals the previous range's last hash). Small ledgers,
    and one process, take the plain walk. `progress(entries)`: entries checked so far."""
    head = chain_head_seq(engine)
    if processes < 2 or head < min_entries:
        return verify_chain(engine, progress=progress)
    url = engine.url.render_as_string(hide_password=False)
    cuts = [head * i // processes for i in range(processes + 1)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        parts = []
        for part in pool.map(_verify_range, [url] * processes, cuts[:-1], cuts[1:]):
            parts.append(part)
            if progress is not None:
                progress(part.hi)
    expected, entries = GENESIS_HASH, 0
    for part in parts:
        if part.first_prev_hash is not None and part.first_prev_hash != expected:
            return ChainReport(False, entries, expected, part.lo + 1,
                               "prev_hash does not match the previous entry's hash")
        entries += part.report.entries
        if not part.report.ok:
            return ChainReport(False, entries, part.report.head, part.report.first_bad_seq,
                               part.report.reason)
        expected = part.report.head
    # Entries appended while the workers ran: walk them on from the stitched head.
    tail = verify_chain(engine, head, expected, progress=progress)
    return ChainReport(tail.ok, entries + tail.entries, tail.head, tail.first_bad_seq,
                       tail.reason)


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
