"""One write transaction of the ledger: locks, in-memory balances, the chain append,
and one bulk flush at the end.

Lock discipline (why no deadlock and no lost update):
1. every writer first locks the `chain_head` row (on SQLite the whole
   database is already locked by BEGIN IMMEDIATE). The hash chain makes
   appends inherently serial, so this row is the ledger's write lock;
2. then the affected bucket rows, `FOR UPDATE`, in (kind, key, period) order.
Balances are read only after both, so every decision sees the latest commits.

Why in memory: a batch of hundreds of commands must cost a handful of
statements, not hundreds. Buckets are loaded once, decisions update their
balances here, and `flush()` writes every row and balance delta in bulk just
before commit. Nothing is acknowledged before that commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ledger.chain import ENCODING_VERSION, entry_hash
from ledger.errors import ChainBroken
from ledger.heads import SIGNED_HEAD, HeadSigner, SignedHead
from ledger.merkle import leaf_hash
from ledger.policy.types import FOOTPRINT, Balance, BucketKey
from ledger.store.arrays import among, rows_among
from ledger.store.bulk import Update, write_all
from ledger.store.models import (
    ActiveHold,
    Bucket,
    ChainHead,
    Entry,
    IdempotencyRecord,
    LineDraw,
    Reservation,
    ReservationLine,
)

BUCKET = Bucket.__table__  # type: ignore[attr-defined]
ACTIVE_HOLD = ActiveHold.__table__  # type: ignore[attr-defined]
ENTRY = Entry.__table__  # type: ignore[attr-defined]
CHAIN_HEAD = ChainHead.__table__  # type: ignore[attr-defined]
RESERVATION = Reservation.__table__  # type: ignore[attr-defined]
RES_LINE = ReservationLine.__table__  # type: ignore[attr-defined]
LINE_DRAW = LineDraw.__table__  # type: ignore[attr-defined]
IDEMPOTENCY = IdempotencyRecord.__table__  # type: ignore[attr-defined]

# Tables rows are inserted into at flush, in this order.
INSERT_ORDER = (RESERVATION, RES_LINE, LINE_DRAW, ACTIVE_HOLD, ENTRY, IDEMPOTENCY)


def bucket_key_of(row: Any) -> BucketKey:
    return BucketKey(row.kind, row.key, row.period, row.operator_id, row.country)


def draw_list(pairs: Iterable[tuple[BucketKey, int]]) -> list[list[Any]]:
    """The canonical `draws` of an entry: [[kind, key, period, tpp], ...] sorted."""
    return sorted([b.kind, b.key, b.period, tpp] for b, tpp in pairs)


def with_expired(query: sa.Select[Any], now: datetime) -> sa.Select[Any]:
    """`query` over bucket rows plus each row's `expired_tpp`: the TPP of its holds already
    past their time at `now` but not yet expired by the job (they count for nothing)."""
    expired = (
        sa.select(sa.func.coalesce(sa.func.sum(ACTIVE_HOLD.c.tpp), 0))
        .where(ACTIVE_HOLD.c.bucket_id == BUCKET.c.id, ACTIVE_HOLD.c.expires_at <= now)
        .scalar_subquery()
    )
    return query.add_columns(expired.label("expired_tpp"))


def effective_balances(rows: Sequence[Any]) -> dict[BucketKey, Balance]:
    """Balances of bucket rows read `with_expired`: holds past their time count for nothing."""
    return {bucket_key_of(r): Balance(r.committed, r.held - int(r.expired_tpp)) for r in rows}


def needed_buckets(
    dialect: str, keys: Iterable[BucketKey], footprint_of: Iterable[str] = ()
) -> sa.Select[Any] | None:
    """Bucket rows with these identities plus every footprint bucket of these operators,
    in the fixed lock order; None when nothing is asked for."""
    conds: list[Any] = []
    keys = list(keys)
    if keys:
        conds.append(
            rows_among(dialect, (BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period),
                       [(k.kind, k.key, k.period) for k in keys])
        )
    operators = sorted(set(footprint_of))
    if operators:
        conds.append(sa.and_(BUCKET.c.kind == FOOTPRINT,
                             among(dialect, BUCKET.c.operator_id, operators)))
    if not conds:
        return None
    return (
        sa.select(BUCKET)
        .where(sa.or_(*conds))
        .order_by(BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period)
    )


@dataclass
class BucketState:
    """A locked bucket's balance as this transaction sees it."""

    id: int
    committed: int
    held: int  # raw: includes holds past their time not yet expired by the job
    expired: int  # the part of `held` that is past its time and counts for nothing

    def balance(self) -> Balance:
        return Balance(self.committed, self.held - self.expired)


class WriteTxn:
    """State of one write transaction; created by the service, never shared."""

    def __init__(self, session: Session, clock: Callable[[], datetime], actor: str,
                 heads: HeadSigner | None = None) -> None:
        self.session = session
        self.actor = actor
        self.dialect = session.get_bind().dialect.name
        self.heads = heads
        self.signed: SignedHead | None = None
        # One statement, a few primary-key lookups: the head (locked), the last entry
        # and the last signed head, so that a chain changed outside the ledger is
        # refused here (ChainBroken) instead of failing later or being extended.
        last_seq = sa.select(sa.func.max(ENTRY.c.seq)).scalar_subquery()
        last_entry = sa.select(ENTRY.c.hash).where(ENTRY.c.seq == last_seq).scalar_subquery()
        last_recorded = (
            sa.select(ENTRY.c.recorded_at).where(ENTRY.c.seq == CHAIN_HEAD.c.seq)
            .scalar_subquery()
        )
        signed_seq = sa.select(sa.func.max(SIGNED_HEAD.c.seq)).scalar_subquery()
        signed_hash = (sa.select(SIGNED_HEAD.c.hash).where(SIGNED_HEAD.c.seq == signed_seq)
                       .scalar_subquery())
        query = (
            sa.select(CHAIN_HEAD.c.seq, CHAIN_HEAD.c.hash, last_recorded,
                      last_seq.label("last_seq"), last_entry.label("last_hash"),
                      signed_seq.label("signed_seq"), signed_hash.label("signed_hash"))
            .where(CHAIN_HEAD.c.id == 1)
        )
        head = session.execute(query.with_for_update(of=CHAIN_HEAD)).one()
        problem = self._head_problem(head)
        if problem is not None:
            # On PostgreSQL (READ COMMITTED) a statement that waited for the lock gets the
            # locked row as committed, but its subqueries still see the snapshot taken
            # before the wait: the previous writer's entry and signed head are missing.
            # Read again under the lock (a fresh snapshot) before calling it broken.
            head = session.execute(query).one()
            problem = self._head_problem(head)
            if problem is not None:
                raise problem
        # "Now" is read only once the write lock is held, and never before the last
        # recorded entry: transactions are ordered by the lock, so their instants must
        # be too. (Read before the lock, a writer that waited could commit a hold that
        # expired while it waited, after another writer had reused its quota; and
        # replicas with skewed clocks could record time going backwards.)
        now = clock()
        if head[2] is not None:
            now = max(now, head[2])
        self.now = now
        self.head_seq: int = head.seq
        self.head_hash: str = head.hash
        self._start_seq = head.seq
        self.buckets: dict[BucketKey, BucketState] = {}
        self.keys_by_id: dict[int, BucketKey] = {}
        self._footprints_loaded: set[str] = set()
        self._deltas: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        self._rows: dict[sa.Table, list[dict[str, Any]]] = defaultdict(list)
        self._status_updates: list[dict[str, Any]] = []
        self._released_holds: list[str] = []
        self.frontier = (heads.frontier_at(session, head.seq, head.hash)
                         if heads is not None and heads.signing else None)

    def _head_problem(self, head: Any) -> ChainBroken | None:
        """Why the chain cannot be written on, as the database's own rows show it was
        changed outside the ledger; None when it is consistent. Cheap: the figures come
        with the head's row."""
        seq, last = head.seq, head.last_seq or 0
        if last > seq:
            return ChainBroken(f"entry seq {last} exists past the chain head at seq {seq} "
                               "(appended outside the ledger)", seq=seq + 1)
        if last < seq:
            return ChainBroken(f"the chain head is at seq {seq} but the last entry is seq "
                               f"{last} (entries deleted)", seq=last + 1)
        if seq and head.last_hash != head.hash:
            return ChainBroken(f"the chain head's hash does not match entry seq {seq}",
                               seq=seq)
        signed = head.signed_seq
        remembered = self.heads.last if self.heads is not None else None
        if remembered is not None and (signed is None or remembered.seq > signed):
            signed, signed_hash = remembered.seq, remembered.hash
        else:
            signed_hash = head.signed_hash
        if signed is None:
            return None
        if signed > seq:
            return ChainBroken(f"the chain head at seq {seq} is below the last signed head "
                               f"at seq {signed} (rolled back)", seq=seq + 1)
        if signed == seq and signed_hash != head.hash:
            return ChainBroken(f"entry seq {seq} is not the signed head's", seq=seq)
        if signed < seq and self.heads is not None and self.heads.signing:
            return ChainBroken(f"entries seq {signed + 1}..{seq} are not covered by a signed "
                               "head (appended without the signing key)", seq=signed + 1)
        return None

    # -- buckets -------------------------------------------------------------

    def lock_buckets(
        self, keys: Iterable[BucketKey], footprint_of: Iterable[str] = ()
    ) -> dict[BucketKey, Balance]:
        """Creates missing buckets, locks (once per transaction) the ones not yet held,
        in fixed order, and returns the balances of all asked for.

        `footprint_of` adds every footprint bucket of those operators.
        """
        keys = set(keys)
        operators = set(footprint_of) - self._footprints_loaded
        missing = sorted(k for k in keys if k not in self.buckets)
        if missing or operators:
            query = needed_buckets(self.dialect, missing, operators)
            assert query is not None
            self._load(self.session.execute(self._locking(query)).all())
            self._footprints_loaded |= operators
            # Buckets seen for the first time: create, then lock them too. (Most
            # batches find every bucket already there and skip this round trip.)
            absent = [k for k in missing if k not in self.buckets]
            if absent:
                self._create_missing(absent)
                query = needed_buckets(self.dialect, absent)
                assert query is not None
                self._load(self.session.execute(self._locking(query)).all())
        out = {k: self.buckets[k].balance() for k in keys}
        for operator_id in footprint_of:
            for key, state in self.buckets.items():
                if key.kind == FOOTPRINT and key.operator_id == operator_id:
                    out[key] = state.balance()
        return out

    def lock_bucket_ids(self, ids: Iterable[int]) -> dict[int, BucketKey]:
        """Locks (once per transaction) and loads buckets by id; returns their keys."""
        ids = set(ids)
        missing = sorted(ids - set(self.keys_by_id))
        if missing:
            self._load(
                self.session.execute(self._locking(
                    sa.select(BUCKET)
                    .where(among(self.dialect, BUCKET.c.id, missing))
                    .order_by(BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period)
                )).all()
            )
        return {i: self.keys_by_id[i] for i in ids if i in self.keys_by_id}

    def _locking(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """`query` over bucket rows, locking them, with each one's expired-hold TPP in the
        same round trip. (Its snapshot is current: the chain lock, held already, is taken
        before any bucket lock by every writer, so this statement never waits for one.)"""
        return with_expired(query, self.now).with_for_update(of=BUCKET)

    def _load(self, rows: Sequence[Any]) -> None:
        for r in rows:
            if r.id in self.keys_by_id:
                continue
            key = bucket_key_of(r)
            self.buckets[key] = BucketState(r.id, r.committed, r.held, int(r.expired_tpp))
            self.keys_by_id[r.id] = key

    def _create_missing(self, keys: Sequence[BucketKey]) -> None:
        if not keys:
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
            for k in keys
        ]
        insert: Any = (postgresql if self.dialect == "postgresql" else sqlite).insert(BUCKET)
        self.session.execute(
            insert.on_conflict_do_nothing(index_elements=["kind", "key", "period"]), values
        )

    def adjust(self, bucket_id: int, committed: int = 0, held: int = 0, expired: int = 0) -> None:
        """Changes a locked bucket's balance; written at flush."""
        state = self.buckets[self.keys_by_id[bucket_id]]
        state.committed += committed
        state.held += held
        state.expired += expired
        delta = self._deltas[bucket_id]
        delta[0] += committed
        delta[1] += held

    def touched_keys(self) -> set[BucketKey]:
        return {self.keys_by_id[i] for i, d in self._deltas.items() if d != [0, 0]}

    # -- rows and the chain ------------------------------------------------------

    def insert(self, table: sa.Table, row: dict[str, Any]) -> None:
        self._rows[table].append(row)

    def set_status(self, reservation_id: str, **values: Any) -> None:
        self._status_updates.append({"rid": reservation_id, **values})

    def drop_active_holds(self, reservation_id: str) -> None:
        self._released_holds.append(reservation_id)

    def append(self, **fields: Any) -> dict[str, Any]:
        """Appends one entry to the chain (written at flush); returns its fields."""
        fields.setdefault("recorded_at", self.now)
        fields.setdefault("actor", self.actor)
        fields.setdefault("idempotency_key", None)
        fields.setdefault("note", None)
        fields["encoding"] = ENCODING_VERSION
        fields["seq"] = self.head_seq + 1
        fields["prev_hash"] = self.head_hash
        fields["hash"] = entry_hash(self.head_hash, fields)
        self._rows[ENTRY].append(fields)
        self.head_seq = fields["seq"]
        self.head_hash = fields["hash"]
        return fields

    def flush(self) -> None:
        """Writes everything this transaction decided, in bulk; call once, before commit."""
        deletes = [(ACTIVE_HOLD, "reservation_id", self._released_holds)] \
            if self._released_holds else []
        inserts = [(table, self._rows.get(table, [])) for table in INSERT_ORDER]
        updates = [self._status_update(columns)
                   for columns in sorted({tuple(sorted(u)) for u in self._status_updates})]
        updates.append(Update(
            BUCKET, "id", ("committed", "held"),
            [(dc, dh, i) for i, (dc, dh) in sorted(self._deltas.items()) if (dc, dh) != (0, 0)],
            adds=frozenset(("committed", "held")),
        ))
        if self.head_seq != self._start_seq:
            updates.append(Update(CHAIN_HEAD, "id", ("seq", "hash"),
                                  [(self.head_seq, self.head_hash, 1)]))
        if self.frontier is not None and self.heads is not None \
                and self.head_seq != self._start_seq:
            append = self.frontier.append
            for row in self._rows[ENTRY]:
                append(leaf_hash(row["hash"]))
            self.signed = self.heads.keys.sign(self.head_seq, self.head_hash,
                                               self.frontier.root().hex(), self.now)
            inserts.append((SIGNED_HEAD, [self.signed.row(self.now)]))
        write_all(self.session, deletes, inserts, updates)

    def _status_update(self, columns: tuple[str, ...]) -> Update:
        names = tuple(c for c in columns if c != "rid")
        # One row per reservation: a later change of the same columns wins, as it would
        # applied in order.
        latest = {u["rid"]: (*(u[c] for c in names), u["rid"]) for u in self._status_updates
                  if tuple(sorted(u)) == columns}
        return Update(RESERVATION, "id", names, list(latest.values()))
