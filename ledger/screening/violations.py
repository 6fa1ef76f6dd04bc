"""The denial of a line whose party has a blocking match (constraint `screening`)."""

from __future__ import annotations

from typing import Any, Final

from ledger.policy.types import SCREENING, Violation

RULE: Final = "screening"
_HOW = {
    "name": "its name is the entry's name",
    "alias": "its name is one of the entry's aliases",
    "address_and_officer": "it shares an address and an officer with the entry or a party "
                           "matching it",
    "ownership": "listed owners hold 50 % or more of it (affiliates rule in force)",
}


def screening_violation(line: int, tpp: int, party: tuple[str, str], match: Any) -> Violation:
    kind, party_id = party
    reason = (f"{kind} {party_id!r} matches entry {match.entry_id} of the {match.list_name}: "
              f"{_HOW.get(match.matched_on, match.matched_on)}; an admin may clear the match")
    return Violation(line=line, constraint=SCREENING, key=match.entry_id, cap=0, used=0,
                     requested=tpp, rule=RULE, reason=reason)
