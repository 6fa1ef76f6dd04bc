"""The Ledger: every write transaction of the books starts and ends here.

Guarantees:
- no bucket's committed + held ever exceeds its cap: the policy decides under
  the write lock, and the service re-checks every capped draw before writing;
- a reservation is all or nothing: a denied line holds nothing for any line;
- entries are only appended, each hash-chained to the one before;
- a hold past its time counts for nothing from that instant (lazy expiry);
- an idempotency key replays its stored outcome and writes nothing;
- a write is acknowledged only after its transaction committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from ledger.books import EXPIRE, HELD, Totals, fold
from ledger.clock import Clock, SystemClock
from ledger.errors import (
    ChainBroken,
    Conflict,
    InvalidInput,
    LedgerError,
    NotFound,
    Unavailable,
)
from ledger.heads import HeadSigner, record_chain_broken
from ledger.operations import Batch, Result, load_reservations, lpp_received
from ledger.policy import engine as policy
from ledger.policy import operator_eligibility_errors, utc_date
from ledger.policy.ruleset import RuleSet
from ledger.policy.types import BucketKey, Decision, LineRequest, OperatorInfo
from ledger.reference import (
    ConsigneeInput,
    LicenseInput,
    LineResolver,
    OperatorInput,
    consignee_info,
    upsert,
)
from ledger.screening.clearance import clear_match
from ledger.screening.screen import screen_changed_party
from ledger.store.arrays import dialect_of
from ledger.store.engine import writer
from ledger.store.models import Consignee, License, Operator
from ledger.store.txn import (
    BUCKET,
    CHAIN_HEAD,
    ENTRY,
    RESERVATION,
    WriteTxn,
    effective_balances,
    needed_buckets,
    with_expired,
)
from ledger.views import (
    Command,
    CommitCommand,
    ReleaseCommand,
    ReservationView,
    ReserveCommand,
    ReserveOutcome,
    ReverseCommand,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
__all__ = ["DB_FAULTS", "CommitListener", "Ledger", "ProjectionRepair", "Result", "notify_commit"]

@dataclass(frozen=True)
class ProjectionRepair:
    """One bucket row set back to its entries: (committed, held) before and after."""

    bucket: tuple[str, str, str]
    before: tuple[int, int]
    after: tuple[int, int]


# Errors that mean the database is unreachable or the transaction could not commit.
# (Integrity and data errors are bugs or bad input, not unavailability.)
DB_FAULTS = (sa_exc.OperationalError, sa_exc.InterfaceError)


CommitListener = Callable[[set[BucketKey]], None]


def notify_commit(listeners: Sequence[CommitListener], changed: set[BucketKey]) -> None:
    """Tells each listener which buckets a commit changed. A failing listener never
    undoes the commit (a cache is not the truth)."""
    for listener in listeners:
        try:
            listener(changed)
        except Exception:
            log.exception("on_commit listener failed")


class Ledger:
    def __init__(self, engine: sa.Engine, rule_set: RuleSet, clock: Clock | None = None,
                 heads: HeadSigner | None = None) -> None:
        self.engine = engine
        # Signs each write transaction's new head (ledger.heads); None: heads unsigned,
        # but the chain's consistency is still checked on every write.
        self.heads = heads
        self.write_engine = writer(engine)
        # Dry runs read several statements that must see one snapshot (SQLite read
        # transactions are snapshots already).
        self.snapshot_engine = (
            engine.execution_options(isolation_level="REPEATABLE READ")
            if engine.dialect.name == "postgresql" else engine
        )
        self.rule_set = rule_set
        self.clock = clock or SystemClock()
        self._listeners: list[CommitListener] = []

    def on_commit(self, listener: CommitListener) -> None:
        """Calls `listener(changed bucket keys)` after each write transaction commits
        (e.g. to refresh a headroom cache). A failing listener never undoes a commit."""
        self._listeners.append(listener)

    # -- public operations: each one transaction --------------------------

    def reserve(self, cmd: ReserveCommand) -> ReserveOutcome:
        return self._one(cmd)  # type: ignore[return-value]

    def commit(self, reservation_id: str, actor: str) -> ReservationView:
        return self._one(CommitCommand(actor, reservation_id))  # type: ignore[return-value]

    def release(self, reservation_id: str, actor: str) -> ReservationView:
        return self._one(ReleaseCommand(actor, reservation_id))  # type: ignore[return-value]

    def reverse(self, reservation_id: str, actor: str, reason: str) -> ReservationView:
        return self._one(ReverseCommand(actor, reservation_id, reason))  # type: ignore[return-value]

    def _one(self, cmd: Command) -> Result:
        result = self.execute([cmd])[0]
        if isinstance(result, LedgerError):
            raise result
        return result

    def execute(self, commands: Sequence[Command]) -> list[Result]:
        """Runs several commands in ONE transaction, each decided and answered on its own.

        A command that fails (denied, invalid, conflicting) changes nothing and
        leaves the others intact; later commands see the effects of earlier
        ones. If the transaction itself cannot commit, the error propagates
        (`Unavailable` when the database is unreachable) and nothing is written.
        """
        if not commands:
            return []
        return self._write(
            lambda txn: Batch(txn, self.rule_set).run(commands), actor=commands[0].actor
        )

    def expire_due(self, limit: int = 1000) -> int:
        """Writes `expire` entries for up to `limit` holds past their time; returns how many."""

        def work(txn: WriteTxn) -> int:
            ids = list(
                txn.session.execute(
                    sa.select(RESERVATION.c.id)
                    .where(RESERVATION.c.status == HELD, RESERVATION.c.expires_at <= txn.now)
                    .order_by(RESERVATION.c.expires_at)
                    .limit(limit)
                ).scalars()
            )
            batch = Batch(txn, self.rule_set)
            batch.load(ids)  # three statements, whatever the number
            for rid in ids:
                state = batch.reservations[rid]
                batch.settle(state, EXPIRE, at=state.row["expires_at"])
            return len(ids)

        return self._write(work, actor="system:expire")

    def repair_projection(
        self, truth: dict[tuple[str, str, str], tuple[int, int]], as_of_seq: int
    ) -> list[ProjectionRepair]:
        """Brings bucket rows back to what the entries say; writes no entry.

        `truth` is (committed, held) per bucket as the entries up to `as_of_seq`
        say. Under the write lock (no entry can be appended meanwhile) the
        entries after `as_of_seq` are added, so the target is exact even if
        writes happened since the snapshot; each drifted row is then set to it.
        Entries are the truth and are never touched; only the projection moves.
        Buckets with no row are left alone (they are reported, not invented).
        Returns what changed.
        """

        def work(txn: WriteTxn) -> list[ProjectionRepair]:
            target = fold(
                txn.session.execute(
                    sa.select(ENTRY.c.kind, ENTRY.c.draws).where(ENTRY.c.seq > as_of_seq)
                ),
                wanted=truth,
                into={k: Totals(c, h) for k, (c, h) in truth.items()},
            )
            rows = txn.session.execute(
                sa.select(BUCKET.c.id, BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period)
                .where(sa.tuple_(BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period).in_(list(target)))
            ).all()
            keys = txn.lock_bucket_ids(r.id for r in rows)
            current = {
                r.id: (r.committed, r.held)
                for r in txn.session.execute(
                    sa.select(BUCKET.c.id, BUCKET.c.committed, BUCKET.c.held)
                    .where(BUCKET.c.id.in_(list(keys)))
                )
            }
            repairs = []
            for bucket_id, key in sorted(keys.items(), key=lambda kv: kv[1]):
                want = target[(key.kind, key.key, key.period)].pair()
                have = current[bucket_id]
                if want != have:
                    txn.adjust(bucket_id, committed=want[0] - have[0], held=want[1] - have[1])
                    repairs.append(ProjectionRepair((key.kind, key.key, key.period), have, want))
            return repairs

        return self._write(work, actor="system:reconcile")


    def decide(self, cmd: ReserveCommand) -> tuple[list[LineRequest], Decision]:
        """A dry run: decides the request against current balances; writes nothing."""
        now = self.clock.now()
        with Session(self.snapshot_engine) as session:
            lines = LineResolver(session, self.rule_set.chip_tpp).resolve(cmd.lines)
            needs = policy.needs(self.rule_set, lines, now)
            query = needed_buckets(dialect_of(session), needs.buckets, needs.footprint_of)
            rows = (list(session.execute(with_expired(query, now)).all())
                    if query is not None else [])
            balances = effective_balances(rows)
        return lines, policy.evaluate(self.rule_set, lines, now, balances)

    # -- reference data (PUT: create or replace) -----------------------------

    def put_operator(self, data: OperatorInput) -> None:
        """Create or replace an operator. A UVEU must be eligible under the rule set in
        force on the day (AID-4: it and its ultimate parent headquartered in Tier 1)."""
        data.validate()
        values = data.row()

        def guard(_session: Session, now: datetime) -> None:
            info = OperatorInfo(data.id, data.hq_country, data.veu_type, data.veu_country,
                                parent_country=data.parent_country)
            errors = operator_eligibility_errors(self.rule_set, info, utc_date(now))
            if errors:
                # Name the headquarters unless only the ultimate parent's is at fault.
                own = replace(info, parent_country=None)
                hq_ok = not operator_eligibility_errors(self.rule_set, own, utc_date(now))
                raise InvalidInput("; ".join(errors),
                                   field="parent_country" if hq_ok else "hq_country")

        self._put(Operator, values, guard, screen="operator")

    def put_consignee(self, data: ConsigneeInput) -> None:
        """Create or replace a consignee. Its group may not change while it has use in
        its current LPP bucket (the policy's period containing now): LPP use is counted
        in the bucket of the group it had when it received it, so moving it would
        silently drop that use from the count of its new group (or give it a fresh cap
        of its own)."""
        data.validate()

        def guard(session: Session, now: datetime) -> None:
            session.execute(  # serialize with ledger writes: no hold slips in meanwhile
                sa.select(CHAIN_HEAD.c.seq).where(CHAIN_HEAD.c.id == 1).with_for_update()
            )
            if data.operator_id is not None and session.get(Operator, data.operator_id) is None:
                raise InvalidInput(f"unknown operator {data.operator_id!r}", field="operator_id")
            row = session.get(Consignee, data.id)
            if row is None or row.group_id == data.group_id:
                return
            bucket, received = lpp_received(session, self.rule_set, consignee_info(row), now)
            if received:
                raise Conflict(
                    "group_change_with_lpp_use",
                    f"consignee {data.id!r} received {received:,} TPP on the LPP path in "
                    f"{bucket.period}; its group cannot change before that period ends "
                    "(that use would drop out of its group's count)",
                )

        self._put(Consignee, data.row(), guard, screen="consignee")

    def put_license(self, data: LicenseInput) -> None:
        data.validate()

        def guard(session: Session, _now: datetime) -> None:
            if data.consignee_id is None:
                return
            consignee = session.get(Consignee, data.consignee_id)
            if consignee is None:
                raise InvalidInput(f"unknown consignee {data.consignee_id!r}",
                                   field="consignee_id")
            if consignee.country != data.country:
                raise InvalidInput(
                    f"consignee {consignee.id!r} is located in {consignee.country}, "
                    f"not in the licence's country {data.country}", field="consignee_id")

        self._put(License, asdict(data), guard)

    def _put(
        self,
        model: type[Any],
        values: dict[str, Any],
        guard: Callable[[Session, datetime], None] | None = None,
        screen: str | None = None,
    ) -> None:
        try:
            with Session(self.write_engine) as session, session.begin():
                now = self.clock.now()
                if guard is not None:
                    guard(session, now)
                upsert(session, model, values, now)
                if screen is not None:  # "operator" | "consignee": screened on every change
                    session.flush()
                    screen_changed_party(session, screen, values["id"], now)
        except DB_FAULTS as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

    # -- restricted-party screening ------------------------------------------

    def clear_screening_match(self, party_id: str, entry_id: str, reason: str,
                              actor: str) -> dict[str, Any]:
        """An admin's clearance of a match: an entry of kind `clearance` in the chain
        (through the write path like every entry) and the match stops blocking until the
        party or the list entry changes."""
        return self._write(
            lambda txn: clear_match(txn, self.rule_set, party_id, entry_id, reason),
            actor=actor)

    def get_reference(self, model: type[Any], ident: str) -> Any:
        """A reference row as a plain dict, or NotFound."""
        with Session(self.engine) as session:
            row = session.get(model, ident)
            if row is None:
                raise NotFound(f"no {model.__name__.lower()} {ident!r}")
            return row.model_dump()

    # -- reads -------------------------------------------------------------

    def get_reservation(self, reservation_id: str) -> ReservationView:
        with Session(self.engine) as session:
            state = load_reservations(session, [reservation_id]).get(reservation_id)
        if state is None:
            raise NotFound(f"no reservation {reservation_id!r}")
        return state.view(self.clock.now())

    # -- transaction plumbing ---------------------------------------------

    def _write(self, work: Callable[[WriteTxn], T], actor: str) -> T:
        try:
            with (
                Session(self.write_engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                txn = WriteTxn(session, self.clock.now, actor, self.heads)
                result = work(txn)
                txn.flush()
        except DB_FAULTS as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        except ChainBroken as exc:
            self._chain_broken(exc)
            raise
        if self.heads is not None and txn.frontier is not None:
            self.heads.committed(txn.frontier, txn.head_hash, txn.signed)
        changed = txn.touched_keys()
        if changed:
            notify_commit(self._listeners, changed)
        return result

    def _chain_broken(self, exc: ChainBroken) -> None:
        """Logs and records (once per distinct reason) a write refused on a broken chain:
        the `chain_broken` finding is what operators and the alerts look at."""
        log.error("write refused, chain broken: %s", exc.detail)
        try:
            record_chain_broken(self.write_engine, exc.detail, exc.seq, self.clock.now(),
                                source="write")
        except Exception:  # recording is best effort; the refusal stands
            log.exception("could not record the chain_broken finding")
