"""The books' vocabulary: entry kinds, reservation statuses, and what each entry
does to a bucket's balance, written once.

Everything that writes entries, filters them by kind, or adds them up into
balances imports this module: the service's in-memory projection, the audit
walk, reconciliation, projection repair and balances `as_of`. The projection
(bucket.committed / bucket.held) is, by definition, `fold` over every entry;
reconciliation checks exactly that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

# -- entry kinds ---------------------------------------------------------------

HOLD: Final = "hold"
COMMIT: Final = "commit"
RELEASE: Final = "release"
EXPIRE: Final = "expire"
REVERSAL: Final = "reversal"
# An admin's clearance of a screening match: recorded in the chain, moves no quota.
CLEARANCE: Final = "clearance"


class Effect(NamedTuple):
    """Multipliers of an entry's drawn TPP on (committed, held) of each bucket it names."""

    committed: int
    held: int


# The one effect table. Every entry kind has exactly one effect; the kinds are its keys.
EFFECT: Final[Mapping[str, Effect]] = MappingProxyType({
    HOLD: Effect(0, 1),
    COMMIT: Effect(1, -1),
    RELEASE: Effect(0, -1),
    EXPIRE: Effect(0, -1),
    REVERSAL: Effect(-1, 0),
    CLEARANCE: Effect(0, 0),
})
ENTRY_KINDS: Final[tuple[str, ...]] = tuple(EFFECT)

# -- reservation statuses ------------------------------------------------------

HELD: Final = "held"
COMMITTED: Final = "committed"
RELEASED: Final = "released"
EXPIRED: Final = "expired"
STATUSES: Final[tuple[str, ...]] = (HELD, COMMITTED, RELEASED, EXPIRED)
# A held reservation settles by one entry kind into one status. (A reversal
# keeps the status `committed` and sets `reversed_at`.)
SETTLES_TO: Final[Mapping[str, str]] = MappingProxyType({
    COMMIT: COMMITTED, RELEASE: RELEASED, EXPIRE: EXPIRED,
})


def status_at(stored: str, expires_at: Any, now: Any) -> str:
    """The status a reservation has at `now`: a hold past its time is expired from that
    instant (lazy expiry), whether or not the `expire` entry was written yet."""
    return EXPIRED if stored == HELD and expires_at <= now else stored


# -- the fold ------------------------------------------------------------------

Bucket = tuple[str, str, str]  # (kind, key, period), as entries' draws name it


def moves(kind: str, tpp: int) -> tuple[int, int]:
    """(Δcommitted, Δheld) one draw of `tpp` in an entry of `kind` makes to its bucket."""
    dc, dh = EFFECT[kind]
    return dc * tpp, dh * tpp


@dataclass
class Totals:
    """One bucket's (committed, held) as the folded entries say; with `per_reservation`,
    also held per reservation (so a caller can drop holds that lapsed)."""

    committed: int = 0
    held: int = 0
    held_by_reservation: dict[str, int] = field(default_factory=dict)

    def pair(self) -> tuple[int, int]:
        return (self.committed, self.held)


def fold(
    entries: Iterable[Any],
    wanted: Iterable[Bucket] | None = None,
    into: dict[Bucket, Totals] | None = None,
    per_reservation: bool = False,
) -> dict[Bucket, Totals]:
    """Adds each entry's effect times draw to the totals of every bucket it draws on.

    `entries` are rows with `.kind` and `.draws` ([[kind, key, period, tpp], ...];
    `.reservation_id` too with `per_reservation`). Only buckets in `wanted` are
    counted when it is given. `into` continues an earlier fold (its totals are
    updated in place and returned). Order does not matter: the sum is exact.
    """
    totals: dict[Bucket, Totals] = {} if into is None else into
    only = None if wanted is None else set(wanted)
    for entry in entries:
        dc, dh = EFFECT[entry.kind]
        for b_kind, b_key, b_period, tpp in entry.draws:
            bucket = (b_kind, b_key, b_period)
            if only is not None and bucket not in only:
                continue
            acc = totals.get(bucket)
            if acc is None:
                acc = totals[bucket] = Totals()
            acc.committed += dc * tpp
            acc.held += dh * tpp
            if per_reservation and dh:
                by = acc.held_by_reservation
                by[entry.reservation_id] = by.get(entry.reservation_id, 0) + dh * tpp
    return totals


def pairs(totals: Mapping[Bucket, Totals]) -> dict[Bucket, tuple[int, int]]:
    """(committed, held) per bucket, the shape the projection stores."""
    return {bucket: t.pair() for bucket, t in totals.items()}
