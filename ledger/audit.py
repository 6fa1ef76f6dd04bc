"""Reading the chain back: verification walks entries in seq order, streaming."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.chain import GENESIS_HASH, ChainReport, ChainVerifier
from ledger.store.models import Entry

ENTRY = Entry.__table__  # type: ignore[attr-defined]


def verify_chain(
    engine: sa.Engine, start_seq: int = 0, start_hash: str = GENESIS_HASH, batch: int = 5000
) -> ChainReport:
    """Checks every entry after `start_seq` (whose hash is `start_hash`): seq gapless,
    each prev_hash linking to the previous hash, each hash matching the contents."""
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
    return verifier.report()


# Effect of one entry kind on (committed, held) of each bucket it names.
ENTRY_EFFECT = {
    "hold": (0, 1),
    "commit": (1, -1),
    "release": (0, -1),
    "expire": (0, -1),
    "reversal": (-1, 0),
}


def balances_from_entries(engine: sa.Engine) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(committed, held) per bucket as the entries alone say: the truth the
    projection must equal. Streams the whole ledger: for jobs and tests, never
    for a request path."""
    totals: dict[tuple[str, str, str], list[int]] = {}
    with Session(engine) as session:
        rows = session.execute(
            sa.select(ENTRY.c.kind, ENTRY.c.draws).execution_options(yield_per=5000)
        )
        for kind, draws in rows:
            dc, dh = ENTRY_EFFECT[kind]
            for b_kind, b_key, b_period, tpp in draws:
                acc = totals.setdefault((b_kind, b_key, b_period), [0, 0])
                acc[0] += dc * tpp
                acc[1] += dh * tpp
    return {k: (v[0], v[1]) for k, v in totals.items()}


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
