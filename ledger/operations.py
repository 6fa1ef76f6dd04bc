"""The commands of the books, applied inside one write transaction.

A `Batch` runs any number of commands in one `WriteTxn`. Each command is
checked completely (idempotency, input, policy decision, the service's own
cap guard) before it changes anything, so a command that fails leaves no
trace and needs no savepoint; later commands see earlier ones' effects
through the transaction's in-memory balances. Reference rows, idempotency
records and reservations are fetched in bulk up front, so a batch costs a
handful of statements whatever its size.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.books import (
    COMMIT,
    COMMITTED,
    HELD,
    HOLD,
    RELEASE,
    RELEASED,
    REVERSAL,
    SETTLES_TO,
    moves,
    status_at,
)
from ledger.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidInput,
    InvariantBroken,
    LedgerError,
    NotFound,
)
from ledger.policy import engine as policy
from ledger.policy import lpp_bucket, utc_date
from ledger.policy.ruleset import RuleSet
from ledger.policy.types import (
    Balance,
    BucketKey,
    ConsigneeInfo,
    Decision,
    LineRequest,
    Violation,
)
from ledger.reference import LineResolver
from ledger.screening.screen import CONSIGNEE, OPERATOR, blocking_matches
from ledger.screening.violations import screening_violation
from ledger.store.arrays import among, dialect_of
from ledger.store.txn import (
    ACTIVE_HOLD,
    BUCKET,
    IDEMPOTENCY,
    LINE_DRAW,
    RES_LINE,
    RESERVATION,
    WriteTxn,
    draw_list,
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

Result = ReserveOutcome | ReservationView | LedgerError
MAX_KEY_LENGTH = 200



@dataclass
class ReservationState:
    """A reservation as this transaction sees it (loaded once, updated in memory)."""

    row: dict[str, Any]
    lines: list[dict[str, Any]]
    draws: list[tuple[int, int, int]] = field(default_factory=list)  # (line_no, bucket_id, tpp)

    def view(self, now: datetime) -> ReservationView:
        return ReservationView(
            id=self.row["id"],
            status=status_at(self.row["status"], self.row["expires_at"], now),
            owner=self.row["owner"],
            created_at=self.row["created_at"],
            expires_at=self.row["expires_at"],
            resolved_at=self.row["resolved_at"],
            reversed_at=self.row["reversed_at"],
            rule_set=self.row["rule_set"],
            rule_set_version=self.row["rule_set_version"],
            lines=tuple(
                LineView(
                    line=r["line_no"],
                    destination_country=r["destination_country"],
                    operator_id=r["operator_id"],
                    consignee_id=r["consignee_id"],
                    chip=r["chip"],
                    quantity=r["quantity"],
                    license_id=r["license_id"],
                    tpp=r["tpp"],
                    path=r["path"],
                )
                for r in self.lines
            ),
        )


def load_reservations(session: Session, ids: Sequence[str]) -> dict[str, ReservationState]:
    """Reads reservations with their lines and draws: three statements for any number."""
    if not ids:
        return {}
    dialect = dialect_of(session)
    rows = session.execute(
        sa.select(RESERVATION).where(among(dialect, RESERVATION.c.id, ids))).all()
    out = {r.id: ReservationState(dict(r._mapping), []) for r in rows}
    for r in session.execute(
        sa.select(RES_LINE).where(among(dialect, RES_LINE.c.reservation_id, ids)).order_by(
            RES_LINE.c.reservation_id, RES_LINE.c.line_no)
    ).all():
        out[r.reservation_id].lines.append(dict(r._mapping))
    for d in session.execute(
        sa.select(LINE_DRAW).where(among(dialect, LINE_DRAW.c.reservation_id, ids))
    ).all():
        out[d.reservation_id].draws.append((d.line_no, d.bucket_id, d.tpp))
    return out


class Batch:
    def __init__(self, txn: WriteTxn, rule_set: RuleSet) -> None:
        self.txn = txn
        self.rule_set = rule_set
        self.resolver = LineResolver(txn.session, rule_set.chip_tpp)
        self.idempotency: dict[tuple[str, str], dict[str, Any]] = {}
        self.reservations: dict[str, ReservationState] = {}
        # Lines resolved and needs computed in the prefetch, by command identity.
        self._planned: dict[int, tuple[list[LineRequest], Any]] = {}
        # Uncleared blocking screening matches of the batch's parties (one lookup).
        self._blocked: dict[tuple[str, str], list[Any]] | None = None
        self._screened: set[tuple[str, str]] = set()

    def run(self, commands: Sequence[Command]) -> list[Result]:
        self._prefetch(commands)
        results: list[Result] = []
        for cmd in commands:
            self.txn.actor = cmd.actor
            try:
                results.append(self.apply(cmd))
            except LedgerError as err:
                results.append(err)
        return results

    def _prefetch(self, commands: Sequence[Command]) -> None:
        """Bulk reads and locks for the whole batch, so each command costs no round trip."""
        txn = self.txn
        keys_by_actor: dict[str, set[str]] = defaultdict(set)
        for c in commands:
            if isinstance(c, ReserveCommand) and c.idempotency_key:
                keys_by_actor[c.actor].add(c.idempotency_key)
        # One query per actor with `key IN (...)`: PostgreSQL turns that into an index
        # condition on (actor, key). A row-value IN over (actor, key) pairs can be
        # planned as "every record of the actor, filtered", a cost that grows with the
        # actor's history (seen once statistics existed: batches slowed to a crawl).
        for actor, actor_keys in keys_by_actor.items():
            for r in txn.session.execute(
                sa.select(IDEMPOTENCY).where(
                    IDEMPOTENCY.c.actor == actor,
                    among(txn.dialect, IDEMPOTENCY.c.key, sorted(actor_keys)))
            ).all():
                self.idempotency[(r.actor, r.key)] = dict(r._mapping)
        reserves = [c for c in commands if isinstance(c, ReserveCommand)]
        self.resolver.prefetch([line for c in reserves for line in c.lines])
        buckets: set[BucketKey] = set()
        operators: set[str] = set()
        for cmd in reserves:
            try:
                lines = self.resolver.resolve(cmd.lines)
            except LedgerError:
                continue  # it fails again, answered, in its own turn
            needs = policy.needs(self.rule_set, lines, txn.now)
            self._planned[id(cmd)] = (lines, needs)
            buckets |= needs.buckets
            operators |= needs.footprint_of
        self._screened = _party_refs(lines for lines, _ in self._planned.values())
        self._blocked = blocking_matches(txn.session, self._screened, self.rule_set, txn.now)
        if buckets or operators:
            txn.lock_buckets(buckets, operators)
        ids = sorted({c.reservation_id for c in commands if not isinstance(c, ReserveCommand)})
        self.load(ids)

    def load(self, ids: Sequence[str]) -> None:
        missing = [i for i in ids if i not in self.reservations]
        loaded = load_reservations(self.txn.session, missing)
        self.reservations.update(loaded)
        bucket_ids = {d[1] for state in loaded.values() for d in state.draws}
        if bucket_ids:
            self.txn.lock_bucket_ids(bucket_ids)

    def apply(self, cmd: Command) -> Result:
        if isinstance(cmd, ReserveCommand):
            return self.reserve(cmd)
        self.load([cmd.reservation_id])
        state = self.reservations.get(cmd.reservation_id)
        if state is None:
            raise NotFound(f"no reservation {cmd.reservation_id!r}")
        if isinstance(cmd, CommitCommand):
            return self.settle_by_client(state, COMMIT)
        if isinstance(cmd, ReleaseCommand):
            return self.settle_by_client(state, RELEASE)
        assert isinstance(cmd, ReverseCommand)
        return self.reverse(state, cmd.reason)

    # -- reserve ---------------------------------------------------------------

    def reserve(self, cmd: ReserveCommand) -> ReserveOutcome:
        txn, now = self.txn, self.txn.now
        request_hash = cmd.request_hash()
        key = cmd.idempotency_key
        if key is not None:
            if not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
                raise InvalidInput(
                    f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
                    field="Idempotency-Key",
                )
            record = self.idempotency.get((cmd.actor, key))
            if record is not None:
                if record["request_hash"] != request_hash:
                    raise IdempotencyMismatch(
                        "this Idempotency-Key was used with a different request"
                    )
                return ReserveOutcome.from_dict(record["outcome"], replayed=True)
        hold = cmd.hold_seconds
        if isinstance(hold, bool) or not isinstance(hold, int) or not 1 <= hold <= MAX_HOLD_SECONDS:
            raise InvalidInput(
                f"hold_seconds must be an integer from 1 to {MAX_HOLD_SECONDS}",
                field="hold_seconds",
            )
        planned = self._planned.get(id(cmd))
        if planned is None:
            lines = self.resolver.resolve(cmd.lines)
            needs = policy.needs(self.rule_set, lines, now)
        else:
            lines, needs = planned
        screened = self._screening_violations(lines)
        if screened:  # nothing held, and no bucket is even read
            outcome = ReserveOutcome(reservation=None, violations=screened)
        else:
            balances = txn.lock_buckets(needs.buckets, needs.footprint_of)
            decision = policy.evaluate(self.rule_set, lines, now, balances)
            if decision.allowed:
                guard_caps(decision, balances)
                view = self._hold(cmd, lines, decision, now + timedelta(seconds=hold))
                outcome = ReserveOutcome(reservation=view)
            else:
                outcome = ReserveOutcome(reservation=None, violations=decision.violations)
        if key is not None:
            record = {"actor": cmd.actor, "key": key, "request_hash": request_hash,
                      "outcome": outcome.to_dict(), "created_at": now}
            self.idempotency[(cmd.actor, key)] = record
            txn.insert(IDEMPOTENCY, record)
        return outcome

    def _screening_violations(self, lines: list[LineRequest]) -> tuple[Violation, ...]:
        """A line whose operator or consignee has an uncleared blocking match is denied
        (constraint `screening`, key the entry id): a lookup of stored match state."""
        refs = _party_refs([lines])
        blocked = self._blocked
        if blocked is None or not refs <= self._screened:
            blocked = blocking_matches(self.txn.session, refs, self.rule_set, self.txn.now)
        out = []
        for i, line in enumerate(lines):
            for ref in ((OPERATOR, line.operator.id), (CONSIGNEE, line.consignee.id)):
                for m in blocked.get(ref, ()):
                    out.append(screening_violation(i, line.tpp, ref, m))
        return tuple(out)

    def _hold(
        self,
        cmd: ReserveCommand,
        lines: list[LineRequest],
        decision: Decision,
        expires_at: datetime,
    ) -> ReservationView:
        txn, now = self.txn, self.txn.now
        rid = "res_" + os.urandom(16).hex()  # 128 random bits, as uuid4().hex gave
        row = {"id": rid, "owner": cmd.actor, "status": HELD, "created_at": now,
               "expires_at": expires_at, "resolved_at": None, "reversed_at": None,
               "hold_seconds": cmd.hold_seconds, "rule_set": decision.rule_set,
               "rule_set_version": decision.rule_set_version,
               "idempotency_key": cmd.idempotency_key}
        state = ReservationState(row, [])
        txn.insert(RESERVATION, row)
        for req, inp, dec in zip(lines, cmd.lines, decision.lines, strict=True):
            assert dec.path is not None
            line = {"reservation_id": rid, "line_no": dec.line,
                    "destination_country": req.destination_country,
                    "operator_id": req.operator.id, "consignee_id": req.consignee.id,
                    "chip": inp.chip, "quantity": inp.quantity, "license_id": inp.license_id,
                    "tpp": dec.tpp, "path": dec.path}
            state.lines.append(line)
            txn.insert(RES_LINE, line)
            for draw in dec.draws:
                bucket_id = txn.buckets[draw.bucket].id
                state.draws.append((dec.line, bucket_id, draw.tpp))
                txn.insert(LINE_DRAW, {"reservation_id": rid, "line_no": dec.line,
                                       "bucket_id": bucket_id, "tpp": draw.tpp})
                txn.insert(ACTIVE_HOLD, {"reservation_id": rid, "line_no": dec.line,
                                         "bucket_id": bucket_id, "tpp": draw.tpp,
                                         "expires_at": expires_at})
                dc, dh = moves(HOLD, draw.tpp)
                txn.adjust(bucket_id, committed=dc, held=dh)
            txn.append(
                kind=HOLD, reservation_id=rid, line_no=dec.line,
                country=req.destination_country, operator_id=req.operator.id,
                consignee_id=req.consignee.id, path=dec.path, tpp=dec.tpp,
                draws=draw_list((d.bucket, d.tpp) for d in dec.draws), effective_at=now,
                idempotency_key=cmd.idempotency_key, rule_set=decision.rule_set,
                rule_set_version=decision.rule_set_version,
            )
        self.reservations[rid] = state
        return state.view(now)

    # -- commit / release / expire / reverse -----------------------------------

    def settle_by_client(self, state: ReservationState, kind: str) -> ReservationView:
        now = self.txn.now
        if state.row["status"] == SETTLES_TO[kind]:
            return state.view(now)  # idempotent repeat
        if not (state.row["status"] == HELD and state.row["expires_at"] > now):
            status = state.view(now).status
            code = {COMMITTED: "already_committed", RELEASED: "already_released"}.get(
                status, status)
            raise Conflict(code, f"cannot {kind} reservation {state.row['id']}: it is {status}",
                           status=status)
        self.settle(state, kind, at=now)
        return state.view(now)

    def settle(self, state: ReservationState, kind: str, at: datetime) -> None:
        """Moves a held reservation to committed / released / expired."""
        txn = self.txn
        # A hold already past its time was counted as nothing; settling it (only
        # the expiry does) removes it from both the raw and the expired figure.
        past_time = state.row["expires_at"] <= txn.now
        self._move(state, kind, at, note=None, expired=past_time)
        txn.drop_active_holds(state.row["id"])
        state.row["status"] = SETTLES_TO[kind]
        state.row["resolved_at"] = txn.now
        txn.set_status(state.row["id"], status=state.row["status"], resolved_at=txn.now)

    def reverse(self, state: ReservationState, reason: str) -> ReservationView:
        txn = self.txn
        if state.row["status"] != COMMITTED:
            raise Conflict("not_committed", "only a committed reservation can be reversed; "
                           f"{state.row['id']} is {state.view(txn.now).status}")
        if state.row["reversed_at"] is None:
            self._move(state, REVERSAL, txn.now, note=reason[:500], expired=False)
            state.row["reversed_at"] = txn.now
            txn.set_status(state.row["id"], reversed_at=txn.now)
        return state.view(txn.now)

    def _move(
        self, state: ReservationState, kind: str, at: datetime, note: str | None, expired: bool
    ) -> None:
        txn = self.txn
        keys = txn.lock_bucket_ids(d[1] for d in state.draws)
        by_line: dict[int, list[tuple[BucketKey, int]]] = defaultdict(list)
        for line_no, bucket_id, tpp in state.draws:
            dc, dh = moves(kind, tpp)
            txn.adjust(bucket_id, committed=dc, held=dh, expired=-tpp if expired else 0)
            by_line[line_no].append((keys[bucket_id], tpp))
        row = state.row
        for line in state.lines:
            txn.append(
                kind=kind, reservation_id=row["id"], line_no=line["line_no"],
                country=line["destination_country"], operator_id=line["operator_id"],
                consignee_id=line["consignee_id"], path=line["path"], tpp=line["tpp"],
                draws=draw_list(by_line[line["line_no"]]), effective_at=at,
                rule_set=row["rule_set"], rule_set_version=row["rule_set_version"], note=note,
            )


def _party_refs(line_lists: Iterable[Sequence[LineRequest]]) -> set[tuple[str, str]]:
    return {ref for lines in line_lists for line in lines
            for ref in ((OPERATOR, line.operator.id), (CONSIGNEE, line.consignee.id))}


def guard_caps(decision: Decision, balances: dict[BucketKey, Balance]) -> None:
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


def lpp_received(
    session: Session, rule_set: RuleSet, consignee: ConsigneeInfo, now: datetime
) -> tuple[BucketKey, int]:
    """The LPP bucket the policy gives `consignee` at `now` (its own or its group's, for
    the period containing `now`) and the TPP the consignee's own lines draw on it:
    committed and not reversed, or held and not yet past its time."""
    bucket = lpp_bucket(rule_set, consignee, utc_date(now))
    bucket_id = sa.select(BUCKET.c.id).where(
        BUCKET.c.kind == bucket.kind, BUCKET.c.key == bucket.key, BUCKET.c.period == bucket.period
    ).scalar_subquery()
    draw, line, res = LINE_DRAW, RES_LINE, RESERVATION
    total = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(draw.c.tpp), 0))
        .select_from(
            draw.join(line, sa.and_(line.c.reservation_id == draw.c.reservation_id,
                                    line.c.line_no == draw.c.line_no))
            .join(res, res.c.id == draw.c.reservation_id)
        )
        .where(
            draw.c.bucket_id == bucket_id,
            line.c.consignee_id == consignee.id,
            sa.or_(
                sa.and_(res.c.status == COMMITTED, res.c.reversed_at.is_(None)),
                sa.and_(res.c.status == HELD, res.c.expires_at > now),
            ),
        )
    ).scalar_one()
    return bucket, int(total)
