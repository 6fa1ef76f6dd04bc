"""Clearances: an admin says a match is not the listed party. Recorded in the hash-
chained history (entry kind `clearance`, no effect on any balance) and in
screening_clearance; it holds while the party's identity fields and the entry's
version are those it cleared."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from ledger.books import CLEARANCE as CLEARANCE_KIND
from ledger.chain import format_time
from ledger.errors import InvalidInput, NotFound
from ledger.screening.screen import CLEARANCE, MATCH, OPERATOR, load_party
from ledger.store.txn import WriteTxn

MAX_REASON = 500
PATH = "screening"


def clear_match(txn: WriteTxn, rule_set: Any, party_id: str, entry_id: str, reason: str
                ) -> dict[str, Any]:
    """Clears the party's current match(es) with the entry. Repeating a clearance that
    still holds writes nothing and answers the one recorded."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason may not be empty", field="reason")
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is longer than {MAX_REASON} characters", field="reason")
    session = txn.session
    rows = session.execute(sa.select(MATCH).where(
        MATCH.c.party_id == party_id, MATCH.c.entry_id == entry_id)
        .order_by(MATCH.c.party_kind, MATCH.c.matched_on)).all()
    if not rows:
        raise NotFound(f"party {party_id!r} has no match with list entry {entry_id!r}")
    out: dict[str, Any] | None = None
    for kind in sorted({r.party_kind for r in rows}):
        match = next(r for r in rows if r.party_kind == kind)
        existing = session.execute(sa.select(CLEARANCE).where(
            CLEARANCE.c.party_kind == kind, CLEARANCE.c.party_id == party_id,
            CLEARANCE.c.entry_id == entry_id,
            CLEARANCE.c.party_fingerprint == match.party_fingerprint,
            CLEARANCE.c.entry_fingerprint == match.entry_fingerprint)).first()
        if existing is not None:
            out = out or _view(existing._mapping)
            continue
        party = load_party(session, kind, party_id)
        assert party is not None  # matches are replaced whenever a party changes
        clearance_id = "clr_" + uuid.uuid4().hex[:24]
        matched_on = ", ".join(r.matched_on for r in rows if r.party_kind == kind)
        note = (f"{kind} {party_id} cleared of {entry_id} ({match.list_name}; matched on "
                f"{matched_on}): {reason}")[:500]
        entry = txn.append(
            kind=CLEARANCE_KIND, reservation_id=clearance_id, line_no=0,
            country=party.country,
            operator_id=party.id if kind == OPERATOR else (party.operator_id or ""),
            consignee_id="" if kind == OPERATOR else party.id, path=PATH, tpp=0, draws=[],
            effective_at=txn.now, rule_set=rule_set.name, rule_set_version=rule_set.version,
            note=note,
        )
        row = {"id": clearance_id, "party_kind": kind, "party_id": party_id,
               "entry_id": entry_id, "party_fingerprint": match.party_fingerprint,
               "entry_fingerprint": match.entry_fingerprint, "reason": reason,
               "actor": txn.actor[:64], "cleared_at": txn.now, "seq": entry["seq"]}
        session.execute(sa.insert(CLEARANCE).values(**row))
        out = out or _view(row)
    assert out is not None
    return out


def _view(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "party_id": row["party_id"], "party_kind": row["party_kind"],
            "entry_id": row["entry_id"], "reason": row["reason"], "actor": row["actor"],
            "cleared_at": format_time(row["cleared_at"]), "seq": row["seq"]}
