"""The books' one effect table and one fold."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ledger.books import (
    CLEARANCE,
    COMMIT,
    EFFECT,
    ENTRY_KINDS,
    EXPIRE,
    HELD,
    HOLD,
    RELEASE,
    REVERSAL,
    SETTLES_TO,
    STATUSES,
    Effect,
    Totals,
    fold,
    moves,
    pairs,
    status_at,
)

LPP = ("lpp", "consignee:a", "2026")
LIC = ("license", "lic-1", "all")


@dataclass(frozen=True)
class E:
    kind: str
    draws: list[list[Any]]
    reservation_id: str = "r1"


def test_every_kind_has_exactly_one_effect_and_clearance_none() -> None:
    assert tuple(EFFECT) == ENTRY_KINDS
    assert len(set(ENTRY_KINDS)) == len(ENTRY_KINDS)
    assert {
        HOLD: Effect(0, 1), COMMIT: Effect(1, -1), RELEASE: Effect(0, -1),
        EXPIRE: Effect(0, -1), REVERSAL: Effect(-1, 0), CLEARANCE: Effect(0, 0),
    } == EFFECT
    assert moves(CLEARANCE, 10**9) == (0, 0)
    # A hold settles by exactly one kind into each end state, and every end state is a status.
    assert set(SETTLES_TO) == {COMMIT, RELEASE, EXPIRE}
    assert set(SETTLES_TO.values()) | {HELD} == set(STATUSES)


def test_each_lifecycle_nets_to_what_it_left() -> None:
    draws = [["lpp", "consignee:a", "2026", 100], ["license", "lic-1", "all", 100]]
    for ending, committed in ((COMMIT, 100), (RELEASE, 0), (EXPIRE, 0)):
        totals = pairs(fold([E(HOLD, draws), E(ending, draws)]))
        assert totals == {LPP: (committed, 0), LIC: (committed, 0)}
    reversed_ = fold([E(HOLD, draws), E(COMMIT, draws), E(REVERSAL, draws), E(CLEARANCE, [])])
    assert pairs(reversed_) == {LPP: (0, 0), LIC: (0, 0)}


def test_fold_filters_continues_and_keeps_holds_per_reservation() -> None:
    entries = [
        E(HOLD, [["lpp", "consignee:a", "2026", 5]], "r1"),
        E(HOLD, [["lpp", "consignee:a", "2026", 7], ["license", "lic-1", "all", 7]], "r2"),
        E(COMMIT, [["lpp", "consignee:a", "2026", 5]], "r1"),
    ]
    only = fold(entries, wanted={LPP}, per_reservation=True)
    assert set(only) == {LPP}
    assert only[LPP].pair() == (5, 7)
    assert only[LPP].held_by_reservation == {"r1": 0, "r2": 7}
    # Folding in two parts (a snapshot, then the tail) is folding the whole.
    start = {LPP: Totals(*fold(entries[:1])[LPP].pair()), LIC: Totals()}
    assert pairs(fold(entries[1:], wanted=start, into=start)) == pairs(fold(entries))


def test_fold_is_order_free() -> None:
    rng = random.Random(7)
    entries = []
    for n in range(200):
        bucket = rng.choice([LPP, LIC])
        entries.append(E(rng.choice(ENTRY_KINDS), [[*bucket, rng.randint(1, 10**6)]], f"r{n}"))
    whole = pairs(fold(entries))
    rng.shuffle(entries)
    assert pairs(fold(entries)) == whole


def test_a_hold_past_its_time_is_expired() -> None:
    assert status_at(HELD, 10, 9) == HELD
    assert status_at(HELD, 10, 10) == "expired"
    assert status_at("committed", 10, 99) == "committed"
