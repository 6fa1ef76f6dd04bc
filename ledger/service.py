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
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from ledger.audit import ENTRY_EFFECT
from ledger.clock import Clock, SystemClock
from ledger.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidInput,
    InvariantBroken,
    LedgerError,
    NotFound,
    Unavailable,
)
from ledger.policy import engine as policy
from ledger.policy.ruleset import RuleSet
from ledger.policy.types import Balance, BucketKey, Decision, LineRequest
from ledger.reference import (
    ConsigneeInput,
    LicenseInput,
    LineResolver,
    OperatorInput,
    upsert,
)
from ledger.store.engine import writer
from ledger.store.models import (
    Consignee,
    IdempotencyRecord,
    License,
    LineDraw,
    Operator,
    Reservation,
    ReservationLine,
)
from ledger.store.txn import (
    ACTIVE_HOLD,
    BUCKET,
    ENTRY,
    WriteTxn,
    draw_list,
    effective_balances,
    needed_buckets,
)
from ledger.views import (
    MAX_HOLD_SECONDS,
    Command,
    CommitCommand,
    LineView,
    ReleaseCommand,
    ReservationView,
    ReserveCommand,
    ReserveOutcome,
    ReverseCommand,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Result = ReserveOutcome | ReservationView | LedgerError

LINE_DRAW = LineDraw.__table__  # type: ignore[attr-defined]
RES_LINE = ReservationLine.__table__  # type: ignore[attr-defined]

@dataclass(frozen=True)
class ProjectionRepair:
    """One bucket row set back to its entries: (committed, held) before and after."""

    bucket: tuple[str, str, str]
    before: tuple[int, int]
    after: tuple[int, int]


# Errors that mean the database is unreachable or the transaction could not commit.
# (Integrity and data errors are bugs or bad input, not unavailability.)
DB_FAULTS = (sa_exc.OperationalError, sa_exc.InterfaceError)
MAX_KEY_LENGTH = 200


class Ledger:
    def __init__(self, engine: sa.Engine, rule_set: RuleSet, clock: Clock | None = None) -> None:
        self.engine = engine
        self.write_engine = writer(engine)
        self.rule_set = rule_set
        self.clock = clock or SystemClock()
        self._listeners: list[Callable[[set[BucketKey]], None]] = []

    def on_commit(self, listener: Callable[[set[BucketKey]], None]) -> None:
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

        A command that fails (denied, invalid, conflicting) is rolled back to its
        savepoint and leaves the others intact; later commands see the effects of
        earlier ones. If the transaction itself cannot commit, every command gets
        `Unavailable` and nothing is written.
        """
        if not commands:
            return []

        def work(txn: WriteTxn) -> list[Result]:
            results: list[Result] = []
            for cmd in commands:
                state = txn.checkpoint()
                nested = txn.session.begin_nested()
                try:
                    results.append(self._apply(txn, cmd))
                    nested.commit()
                except LedgerError as err:
                    nested.rollback()
                    txn.restore(state)
                    results.append(err)
            return results

        return self._write(work, actor=getattr(commands[0], "actor", "system"))

    def expire_due(self, limit: int = 1000) -> int:
        """Writes `expire` entries for up to `limit` holds past their time; returns how many."""

        def work(txn: WriteTxn) -> int:
            ids = txn.session.execute(
                sa.select(Reservation.id)  # type: ignore[call-overload]
                .where(Reservation.status == "held", Reservation.expires_at <= txn.now)
                .order_by(Reservation.expires_at)
                .limit(limit)
            ).scalars().all()
            for rid in ids:
                res = txn.session.get(Reservation, rid)
                assert res is not None
                self._settle(txn, res, "expire", at=res.expires_at)
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
            target = {k: list(v) for k, v in truth.items()}
            tail = txn.session.execute(
                sa.select(ENTRY.c.kind, ENTRY.c.draws).where(ENTRY.c.seq > as_of_seq)
            ).all()
            for kind, draws in tail:
                dc, dh = ENTRY_EFFECT[kind]
                for b_kind, b_key, b_period, tpp in draws:
                    if (b_kind, b_key, b_period) in target:
                        target[(b_kind, b_key, b_period)][0] += dc * tpp
                        target[(b_kind, b_key, b_period)][1] += dh * tpp
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
                want = tuple(target[(key.kind, key.key, key.period)])
                have = current[bucket_id]
                if want != have:
                    txn.adjust(bucket_id, committed=want[0] - have[0], held=want[1] - have[1])
                    repairs.append(ProjectionRepair((key.kind, key.key, key.period), have,
                                                    (want[0], want[1])))
            return repairs

        return self._write(work, actor="system:reconcile")

    def decide(self, cmd: ReserveCommand) -> tuple[list[LineRequest], Decision]:
        """A dry run: decides the request against current balances; writes nothing."""
        now = self.clock.now()
        with Session(self.engine) as session:
            lines = LineResolver(session, self.rule_set.chip_tpp).resolve(cmd.lines)
            needs = policy.needs(self.rule_set, lines, now)
            query = needed_buckets(needs.buckets, needs.footprint_of)
            rows = list(session.execute(query).all()) if query is not None else []
            balances = effective_balances(session, rows, now)
        return lines, policy.evaluate(self.rule_set, lines, now, balances)

    # -- reference data (PUT: create or replace) -----------------------------

    def put_operator(self, data: OperatorInput) -> None:
        data.validate()
        values = {
            "id": data.id,
            "name": data.name,
            "hq_country": data.hq_country,
            "veu_type": data.veu_type,
            "veu_country": data.veu_country,
            "footprint": dict(data.footprint or {}),
        }
        self._put(Operator, values)

    def put_consignee(self, data: ConsigneeInput) -> None:
        data.validate()
        self._put(Consignee, asdict(data))

    def put_license(self, data: LicenseInput) -> None:
        data.validate()
        self._put(License, asdict(data))

    def _put(self, model: type[Any], values: dict[str, Any]) -> None:
        try:
            with Session(self.write_engine) as session, session.begin():
                upsert(session, model, values, self.clock.now())
        except DB_FAULTS as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc

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
            res = session.get(Reservation, reservation_id)
            if res is None:
                raise NotFound(f"no reservation {reservation_id!r}")
            return self._view(session, res, self.clock.now())

    # -- transaction plumbing ---------------------------------------------

    def _write(self, work: Callable[[WriteTxn], T], actor: str) -> T:
        try:
            with (
                Session(self.write_engine, expire_on_commit=False) as session,
                session.begin(),
            ):
                txn = WriteTxn(session, self.clock.now(), actor)
                result = work(txn)
                txn.finish()
        except DB_FAULTS as exc:
            raise Unavailable(f"database unavailable: {type(exc).__name__}") from exc
        changed = txn.touched_keys()
        if changed:
            for listener in self._listeners:
                try:
                    listener(changed)
                except Exception:  # a cache is not the truth; the commit stands
                    log.exception("on_commit listener failed")
        return result

    def _apply(self, txn: WriteTxn, cmd: Command) -> Result:
        txn.actor = cmd.actor
        if isinstance(cmd, ReserveCommand):
            return self._reserve(txn, cmd)
        res = txn.session.get(Reservation, cmd.reservation_id)
        if res is None:
            raise NotFound(f"no reservation {cmd.reservation_id!r}")
        if isinstance(cmd, CommitCommand):
            return self._commit(txn, res)
        if isinstance(cmd, ReleaseCommand):
            return self._release(txn, res)
        return self._reverse(txn, res, cmd.reason)

    # -- reserve -------------------------------------------------------------

    def _reserve(self, txn: WriteTxn, cmd: ReserveCommand) -> ReserveOutcome:
        session, now = txn.session, txn.now
        request_hash = cmd.request_hash()
        key = cmd.idempotency_key
        if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
            raise InvalidInput(
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
                field="Idempotency-Key",
            )
        if cmd.idempotency_key is not None:
            record = session.get(IdempotencyRecord, (cmd.actor, cmd.idempotency_key))
            if record is not None:
                if record.request_hash != request_hash:
                    raise IdempotencyMismatch(
                        "this Idempotency-Key was used with a different request"
                    )
                return ReserveOutcome.from_dict(record.outcome, replayed=True)
        hold = cmd.hold_seconds
        if isinstance(hold, bool) or not isinstance(hold, int) or not 1 <= hold <= MAX_HOLD_SECONDS:
            raise InvalidInput(
                f"hold_seconds must be an integer from 1 to {MAX_HOLD_SECONDS}",
                field="hold_seconds",
            )
        lines = LineResolver(session, self.rule_set.chip_tpp).resolve(cmd.lines)
        needs = policy.needs(self.rule_set, lines, now)
        balances = txn.lock_buckets(needs.buckets, needs.footprint_of)
        decision = policy.evaluate(self.rule_set, lines, now, balances)
        decided = tuple(
            {"line": d.line, "path": d.path, "tpp": d.tpp} for d in decision.lines
        )
        if decision.allowed:
            self._guard_caps(decision, balances)
            view = self._hold(txn, cmd, lines, decision, now + timedelta(seconds=hold))
            outcome = ReserveOutcome(reservation=view, decided_lines=decided)
        else:
            outcome = ReserveOutcome(
                reservation=None, violations=decision.violations, decided_lines=decided
            )
        if cmd.idempotency_key is not None:
            session.add(
                IdempotencyRecord(
                    actor=cmd.actor,
                    key=cmd.idempotency_key,
                    request_hash=request_hash,
                    outcome=outcome.to_dict(),
                    created_at=now,
                )
            )
            session.flush()
        return outcome

    @staticmethod
    def _guard_caps(decision: Decision, balances: dict[BucketKey, Balance]) -> None:
        """The service's own check, independent of the policy: no capped draw may overflow."""
        taken: dict[BucketKey, int] = defaultdict(int)
        for line in decision.lines:
            for draw in line.draws:
                if draw.tpp <= 0:
                    raise InvariantBroken(f"non-positive draw on {draw.bucket}")
                taken[draw.bucket] += draw.tpp
                if draw.cap is not None:
                    used = balances.get(draw.bucket, Balance()).used
                    if used + taken[draw.bucket] > draw.cap:
                        raise InvariantBroken(
                            f"decision would put {draw.bucket.kind}:{draw.bucket.key} "
                            f"over its cap ({used} + {taken[draw.bucket]} > {draw.cap})"
                        )

    def _hold(
        self,
        txn: WriteTxn,
        cmd: ReserveCommand,
        lines: list[LineRequest],
        decision: Decision,
        expires_at: datetime,
    ) -> ReservationView:
        session, now = txn.session, txn.now
        rid = "res_" + uuid.uuid4().hex
        session.add(
            Reservation(
                id=rid,
                owner=cmd.actor,
                status="held",
                created_at=now,
                expires_at=expires_at,
                hold_seconds=cmd.hold_seconds,
                rule_set=decision.rule_set,
                rule_set_version=decision.rule_set_version,
                idempotency_key=cmd.idempotency_key,
            )
        )
        session.flush()
        line_rows, draw_rows, hold_rows = [], [], []
        for req, inp, dec in zip(lines, cmd.lines, decision.lines, strict=True):
            assert dec.path is not None
            line_rows.append(
                {
                    "reservation_id": rid,
                    "line_no": dec.line,
                    "destination_country": req.destination_country,
                    "operator_id": req.operator.id,
                    "consignee_id": req.consignee.id,
                    "chip": inp.chip,
                    "quantity": inp.quantity,
                    "license_id": inp.license_id,
                    "tpp": dec.tpp,
                    "path": dec.path,
                }
            )
            for draw in dec.draws:
                bucket_id = txn.bucket_ids[draw.bucket]
                row = {"reservation_id": rid, "line_no": dec.line, "bucket_id": bucket_id,
                       "tpp": draw.tpp}
                draw_rows.append(row)
                hold_rows.append({**row, "expires_at": expires_at})
                txn.adjust(bucket_id, held=draw.tpp)
            txn.append(
                kind="hold",
                reservation_id=rid,
                line_no=dec.line,
                country=req.destination_country,
                operator_id=req.operator.id,
                consignee_id=req.consignee.id,
                path=dec.path,
                tpp=dec.tpp,
                draws=draw_list((d.bucket, d.tpp) for d in dec.draws),
                effective_at=now,
                idempotency_key=cmd.idempotency_key,
                rule_set=decision.rule_set,
                rule_set_version=decision.rule_set_version,
            )
        session.execute(sa.insert(RES_LINE), line_rows)
        if draw_rows:
            session.execute(sa.insert(LINE_DRAW), draw_rows)
            session.execute(sa.insert(ACTIVE_HOLD), hold_rows)
        res = session.get(Reservation, rid)
        assert res is not None
        return self._view(session, res, now)

    # -- commit / release / expire / reverse -------------------------------

    def _commit(self, txn: WriteTxn, res: Reservation) -> ReservationView:
        if res.status == "committed":
            return self._view(txn.session, res, txn.now)  # idempotent repeat
        self._require_live_hold(res, txn.now, "commit")
        self._settle(txn, res, "commit", at=txn.now)
        return self._view(txn.session, res, txn.now)

    def _release(self, txn: WriteTxn, res: Reservation) -> ReservationView:
        if res.status == "released":
            return self._view(txn.session, res, txn.now)  # idempotent repeat
        self._require_live_hold(res, txn.now, "release")
        self._settle(txn, res, "release", at=txn.now)
        return self._view(txn.session, res, txn.now)

    @staticmethod
    def _require_live_hold(res: Reservation, now: datetime, action: str) -> None:
        if res.status == "held" and res.expires_at > now:
            return
        status = "expired" if res.status == "held" else res.status
        code = {"committed": "already_committed", "released": "already_released"}.get(
            status, status
        )
        raise Conflict(code, f"cannot {action} reservation {res.id}: it is {status}",
                       status=status)

    def _settle(self, txn: WriteTxn, res: Reservation, kind: str, at: datetime) -> None:
        """Moves a held reservation to committed / released / expired, entry by entry."""
        rule_set, version = res.rule_set, res.rule_set_version
        self._move(txn, res, kind, at, rule_set, version, note=None)
        txn.session.execute(sa.delete(ACTIVE_HOLD).where(ACTIVE_HOLD.c.reservation_id == res.id))
        res.status = {"commit": "committed", "release": "released", "expire": "expired"}[kind]
        res.resolved_at = txn.now
        txn.session.flush()

    def _reverse(self, txn: WriteTxn, res: Reservation, reason: str) -> ReservationView:
        if res.status != "committed":
            raise Conflict("not_committed", f"only a committed reservation can be reversed; "
                           f"{res.id} is {res.status}")
        if res.reversed_at is None:
            self._move(txn, res, "reversal", txn.now, res.rule_set, res.rule_set_version,
                       note=reason[:500])
            res.reversed_at = txn.now
            txn.session.flush()
        return self._view(txn.session, res, txn.now)

    def _move(
        self,
        txn: WriteTxn,
        res: Reservation,
        kind: str,
        at: datetime,
        rule_set: str,
        version: str,
        note: str | None,
    ) -> None:
        session = txn.session
        draws = session.execute(
            sa.select(LINE_DRAW.c.line_no, LINE_DRAW.c.bucket_id, LINE_DRAW.c.tpp)
            .where(LINE_DRAW.c.reservation_id == res.id)
        ).all()
        keys = txn.lock_bucket_ids(d.bucket_id for d in draws)
        # commit moves held into committed; release/expire give the hold back;
        # reversal gives back what was committed.
        delta = {"commit": (1, -1), "release": (0, -1), "expire": (0, -1), "reversal": (-1, 0)}
        dc, dh = delta[kind]
        by_line: dict[int, list[tuple[BucketKey, int]]] = defaultdict(list)
        for d in draws:
            txn.adjust(d.bucket_id, committed=dc * d.tpp, held=dh * d.tpp)
            by_line[d.line_no].append((keys[d.bucket_id], d.tpp))
        lines = session.execute(
            sa.select(RES_LINE).where(RES_LINE.c.reservation_id == res.id)
            .order_by(RES_LINE.c.line_no)
        ).all()
        for line in lines:
            txn.append(
                kind=kind,
                reservation_id=res.id,
                line_no=line.line_no,
                country=line.destination_country,
                operator_id=line.operator_id,
                consignee_id=line.consignee_id,
                path=line.path,
                tpp=line.tpp,
                draws=draw_list(by_line[line.line_no]),
                effective_at=at,
                rule_set=rule_set,
                rule_set_version=version,
                note=note,
            )

    # -- views ---------------------------------------------------------------

    @staticmethod
    def _view(session: Session, res: Reservation, now: datetime) -> ReservationView:
        lines = session.execute(
            sa.select(RES_LINE).where(RES_LINE.c.reservation_id == res.id)
            .order_by(RES_LINE.c.line_no)
        ).all()
        status = res.status
        if status == "held" and res.expires_at <= now:
            status = "expired"  # lazy expiry: true from that instant, job or no job
        return ReservationView(
            id=res.id,
            status=status,
            owner=res.owner,
            created_at=res.created_at,
            expires_at=res.expires_at,
            resolved_at=res.resolved_at,
            reversed_at=res.reversed_at,
            rule_set=res.rule_set,
            rule_set_version=res.rule_set_version,
            lines=tuple(
                LineView(
                    line=r.line_no,
                    destination_country=r.destination_country,
                    operator_id=r.operator_id,
                    consignee_id=r.consignee_id,
                    chip=r.chip,
                    quantity=r.quantity,
                    license_id=r.license_id,
                    tpp=r.tpp,
                    path=r.path,
                )
                for r in lines
            ),
        )
