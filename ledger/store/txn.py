"""One write transaction of the ledger: locks, balances and the chain append.

Lock discipline (why no deadlock and no lost update):
1. every writer first locks the `chain_head` row (on SQLite the whole
   database is already locked by BEGIN IMMEDIATE). The hash chain makes
   appends inherently serial, so this row is the ledger's write lock;
2. then the affected bucket rows, `FOR UPDATE`, in (kind, key, period) order.
Balances are read only after both, so every decision sees the latest commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ledger.chain import ENCODING_VERSION, entry_hash
from ledger.policy.types import FOOTPRINT, Balance, BucketKey
from ledger.store.models import ActiveHold, Bucket, ChainHead, Entry

BUCKET = Bucket.__table__  # type: ignore[attr-defined]
ACTIVE_HOLD = ActiveHold.__table__  # type: ignore[attr-defined]
ENTRY = Entry.__table__  # type: ignore[attr-defined]
CHAIN_HEAD = ChainHead.__table__  # type: ignore[attr-defined]


def bucket_key_of(row: Any) -> BucketKey:
    return BucketKey(row.kind, row.key, row.period, row.operator_id, row.country)


def draw_list(pairs: Iterable[tuple[BucketKey, int]]) -> list[list[Any]]:
    """The canonical `draws` of an entry: [[kind, key, period, tpp], ...] sorted."""
    return sorted([b.kind, b.key, b.period, tpp] for b, tpp in pairs)


def effective_balances(
    session: Session, rows: Sequence[Any], now: datetime
) -> dict[BucketKey, Balance]:
    """Balances of the given bucket rows, with holds past their time counting for nothing."""
    if not rows:
        return {}
    ids = [r.id for r in rows]
    expired: dict[int, int] = dict(
        session.execute(
            sa.select(ACTIVE_HOLD.c.bucket_id, sa.func.sum(ACTIVE_HOLD.c.tpp))
            .where(ACTIVE_HOLD.c.bucket_id.in_(ids), ACTIVE_HOLD.c.expires_at <= now)
            .group_by(ACTIVE_HOLD.c.bucket_id)
        ).all()
    )
    return {
        bucket_key_of(r): Balance(r.committed, r.held - int(expired.get(r.id) or 0)) for r in rows
    }


def needed_buckets(
    keys: Iterable[BucketKey], footprint_of: Iterable[str] = ()
) -> sa.Select[Any] | None:
    """Bucket rows with these identities plus every footprint bucket of these operators,
    in the fixed lock order; None when nothing is asked for."""
    conds: list[Any] = []
    keys = list(keys)
    if keys:
        conds.append(
            sa.tuple_(BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period).in_(
                [(k.kind, k.key, k.period) for k in keys]
            )
        )
    operators = sorted(set(footprint_of))
    if operators:
        conds.append(sa.and_(BUCKET.c.kind == FOOTPRINT, BUCKET.c.operator_id.in_(operators)))
    if not conds:
        return None
    return (
        sa.select(BUCKET)
        .where(sa.or_(*conds))
        .order_by(BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period)
    )


class WriteTxn:
    """State of one write transaction; created by the service, never shared."""

    def __init__(self, session: Session, now: datetime, actor: str) -> None:
        self.session = session
        self.now = now
        self.actor = actor
        self.dialect = session.get_bind().dialect.name
        head = session.execute(
            sa.select(CHAIN_HEAD.c.seq, CHAIN_HEAD.c.hash)
            .where(CHAIN_HEAD.c.id == 1)
            .with_for_update()
        ).one()
        self.head_seq: int = head.seq
        self.head_hash: str = head.hash
        self._start_seq = head.seq
        self.bucket_ids: dict[BucketKey, int] = {}
        self.touched: set[int] = set()  # bucket ids whose balance this transaction changed

    # -- buckets ---------------------------------------------------------

    def lock_buckets(
        self, keys: Iterable[BucketKey], footprint_of: Iterable[str] = ()
    ) -> dict[BucketKey, Balance]:
        """Creates missing buckets, locks them in fixed order, returns their balances.

        `footprint_of` adds every footprint bucket of those operators.
        """
        keys = sorted(set(keys))
        self._create_missing(keys)
        query = needed_buckets(keys, footprint_of)
        if query is None:
            return {}
        rows = self.session.execute(query.with_for_update()).all()
        for r in rows:
            self.bucket_ids[bucket_key_of(r)] = r.id
        return effective_balances(self.session, rows, self.now)

    def lock_bucket_ids(self, ids: Iterable[int]) -> dict[int, BucketKey]:
        rows = self.session.execute(
            sa.select(BUCKET)
            .where(BUCKET.c.id.in_(sorted(set(ids))))
            .order_by(BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period)
            .with_for_update()
        ).all()
        out = {}
        for r in rows:
            key = bucket_key_of(r)
            self.bucket_ids[key] = r.id
            out[r.id] = key
        return out

    def _create_missing(self, keys: Sequence[BucketKey]) -> None:
        missing = [k for k in keys if k not in self.bucket_ids]
        if not missing:
            return
        values = [
            {
                "kind": k.kind,
                "key": k.key,
                "period": k.period,
                "operator_id": k.operator_id,
                "country": k.country,
                "committed": 0,
                "held": 0,
            }
            for k in missing
        ]
        insert: Any = (postgresql if self.dialect == "postgresql" else sqlite).insert(BUCKET)
        self.session.execute(
            insert.on_conflict_do_nothing(index_elements=["kind", "key", "period"]), values
        )

    def adjust(self, bucket_id: int, committed: int = 0, held: int = 0) -> None:
        self.touched.add(bucket_id)
        self.session.execute(
            sa.update(BUCKET)
            .where(BUCKET.c.id == bucket_id)
            .values(committed=BUCKET.c.committed + committed, held=BUCKET.c.held + held)
        )

    # -- the chain -------------------------------------------------------

    def append(self, **fields: Any) -> dict[str, Any]:
        """Appends one entry to the chain; returns its stored fields."""
        fields = dict(fields)
        fields.setdefault("recorded_at", self.now)
        fields.setdefault("actor", self.actor)
        fields.setdefault("idempotency_key", None)
        fields.setdefault("note", None)
        fields["encoding"] = ENCODING_VERSION
        fields["seq"] = self.head_seq + 1
        fields["prev_hash"] = self.head_hash
        fields["hash"] = entry_hash(self.head_hash, fields)
        self.session.execute(sa.insert(ENTRY), [fields])
        self.head_seq = fields["seq"]
        self.head_hash = fields["hash"]
        return fields

    def checkpoint(self) -> tuple[int, str, dict[BucketKey, int], set[int]]:
        """In-memory state to restore when a savepoint rolls back."""
        return self.head_seq, self.head_hash, dict(self.bucket_ids), set(self.touched)

    def restore(self, state: tuple[int, str, dict[BucketKey, int], set[int]]) -> None:
        self.head_seq, self.head_hash = state[0], state[1]
        self.bucket_ids, self.touched = dict(state[2]), set(state[3])

    def touched_keys(self) -> set[BucketKey]:
        by_id = {v: k for k, v in self.bucket_ids.items()}
        return {by_id[i] for i in self.touched if i in by_id}

    def finish(self) -> None:
        """Moves the chain head; call once, just before commit."""
        if self.head_seq != self._start_seq:
            self.session.execute(
                sa.update(CHAIN_HEAD)
                .where(CHAIN_HEAD.c.id == 1)
                .values(seq=self.head_seq, hash=self.head_hash)
            )
