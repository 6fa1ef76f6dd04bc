"""How screening decides, and where its state lives.

A party (operator or consignee) matches an entry of the list version in force when

- `name` / `alias`: its normalised name equals the entry's normalised name or one of
  its aliases (ledger.screening.normalise);
- `address_and_officer`: it shares BOTH an address and an officer with the entry, or
  with another party that matches the entry by name or alias (one hop);
- `ownership`: owners whose normalised name is a listed name or alias (or is the name
  of a party matching an entry by name or alias) hold 50 % or more of it in total.
  Stored like the others, but it blocks only while the rule set says the affiliates
  rule (measure `affiliates_rule`) is in force at the instant asked about.

Everything else that comes close (a shared address or officer without the other, a
name within `FUZZY_MIN` of a listed one, listed owners below 50 %) is a
`possible_alias` finding, never a block.

Lookups go through the normalised keys (screening_entry_key, screening_party_key,
both indexed on (key_type, key)): screening a party never reads the whole list,
except the fuzzy comparison, which runs on party changes and list imports (never on
a reservation) against an in-process copy of the current version's names.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from rapidfuzz import fuzz, process
from sqlalchemy.orm import Session

from ledger.screening.normalise import normalise_address, normalise_name, normalise_person
from ledger.store.arrays import among, dialect_of
from ledger.store.models import (
    Consignee,
    Operator,
    ScreeningClearance,
    ScreeningEntry,
    ScreeningEntryKey,
    ScreeningListVersion,
    ScreeningMatch,
    ScreeningPartyKey,
)

VERSION: Final = ScreeningListVersion.__table__  # type: ignore[attr-defined]
ENTRY: Final = ScreeningEntry.__table__  # type: ignore[attr-defined]
ENTRY_KEY: Final = ScreeningEntryKey.__table__  # type: ignore[attr-defined]
PARTY_KEY: Final = ScreeningPartyKey.__table__  # type: ignore[attr-defined]
MATCH: Final = ScreeningMatch.__table__  # type: ignore[attr-defined]
CLEARANCE: Final = ScreeningClearance.__table__  # type: ignore[attr-defined]
OPERATOR_T: Final = Operator.__table__  # type: ignore[attr-defined]
CONSIGNEE_T: Final = Consignee.__table__  # type: ignore[attr-defined]

OPERATOR: Final = "operator"
CONSIGNEE: Final = "consignee"
NAME: Final = "name"
ALIAS: Final = "alias"
ADDRESS_AND_OFFICER: Final = "address_and_officer"
OWNERSHIP: Final = "ownership"
AFFILIATES_MEASURE: Final = "affiliates_rule"
OWNERSHIP_THRESHOLD: Final = 50  # percent: 49 does not match, 50 does
FUZZY_MIN: Final = 88.0  # rapidfuzz ratio of token-sorted names (= token_sort_ratio)
FINDING_KIND: Final = "possible_alias"
FINDING_JOB: Final = "screening"

PartyRef = tuple[str, str]  # (kind, id)


@dataclass(frozen=True)
class Party:
    kind: str
    id: str
    name: str
    country: str
    operator_id: str | None
    address: str | None
    officers: tuple[str, ...]
    owners: tuple[tuple[str, int], ...]

    @classmethod
    def from_row(cls, kind: str, row: Any) -> Party:
        country = row.hq_country if kind == OPERATOR else row.country
        operator_id = row.id if kind == OPERATOR else row.operator_id
        owners = tuple((o["name"], int(o["percent"])) for o in (row.owners or []))
        return cls(kind, row.id, row.name, country, operator_id, row.address,
                   tuple(row.officers or ()), owners)

    @property
    def ref(self) -> PartyRef:
        return (self.kind, self.id)

    @property
    def fingerprint(self) -> str:
        """What a clearance holds for: the identity fields screening looks at."""
        raw = json.dumps([self.name, self.address, list(self.officers),
                          [list(o) for o in self.owners]], ensure_ascii=False)
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def name_key(self) -> str:
        return normalise_name(self.name)

    @property
    def address_key(self) -> str:
        return normalise_address(self.address) if self.address else ""

    @property
    def officer_keys(self) -> list[str]:
        return sorted({k for k in map(normalise_person, self.officers) if k})

    def owner_keys(self) -> list[tuple[str, int]]:
        return [(k, pct) for name, pct in self.owners if (k := normalise_name(name))]

    def key_rows(self) -> list[dict[str, Any]]:
        base: dict[str, Any] = {"party_kind": self.kind, "party_id": self.id}
        rows: list[dict[str, Any]] = []
        if self.name_key:
            rows.append({**base, "key_type": NAME, "key": self.name_key[:500], "percent": None})
        if self.address_key:
            rows.append({**base, "key_type": "address", "key": self.address_key[:500],
                         "percent": None})
        rows += [{**base, "key_type": "officer", "key": k[:500], "percent": None}
                 for k in self.officer_keys]
        rows += [{**base, "key_type": "owner", "key": k[:500], "percent": pct}
                 for k, pct in self.owner_keys()]
        return rows


@dataclass(frozen=True)
class Match:
    party: PartyRef
    entry_id: str
    matched_on: str
    score: float
    via: str | None = None


@dataclass(frozen=True)
class Note:
    """Something close to a match: becomes a possible_alias finding."""

    party: PartyRef
    entry_id: str
    why: str
    score: float


@dataclass(frozen=True)
class EntryInfo:
    list_name: str
    name: str
    fingerprint: str


# -- indexes: where keys are looked up ------------------------------------------------


class SqlIndex:
    """Lookups by normalised key in the database (one party's screening)."""

    def __init__(self, session: Session, version_id: int, sha256: str) -> None:
        self.session = session
        self.version_id = version_id
        self.sha256 = sha256

    def entries_with(self, types: Collection[str], keys: Collection[str]
                     ) -> dict[str, set[str]]:
        if not keys:
            return {}
        out: dict[str, set[str]] = defaultdict(set)
        for r in self.session.execute(
            sa.select(ENTRY_KEY.c.entry_id, ENTRY_KEY.c.key_type, ENTRY_KEY.c.key).where(
                ENTRY_KEY.c.key_type.in_(sorted(types)), ENTRY_KEY.c.key.in_(sorted(keys)),
                ENTRY_KEY.c.version_id == self.version_id)
        ):
            out[r.entry_id].add(r.key_type)
            out[r.entry_id].add("=" + r.key)
        return out

    def parties_with(self, key_type: str, keys: Collection[str]) -> set[PartyRef]:
        if not keys:
            return set()
        return {(r.party_kind, r.party_id) for r in self.session.execute(
            sa.select(PARTY_KEY.c.party_kind, PARTY_KEY.c.party_id).where(
                PARTY_KEY.c.key_type == key_type, PARTY_KEY.c.key.in_(sorted(keys))))}

    def name_matches_of(self, parties: Collection[PartyRef]) -> dict[PartyRef, set[str]]:
        out: dict[PartyRef, set[str]] = defaultdict(set)
        ids = sorted({p[1] for p in parties})
        if not ids:
            return out
        for r in self.session.execute(
            sa.select(MATCH.c.party_kind, MATCH.c.party_id, MATCH.c.entry_id).where(
                MATCH.c.party_id.in_(ids), MATCH.c.matched_on.in_((NAME, ALIAS)))
        ):
            if (r.party_kind, r.party_id) in parties:
                out[(r.party_kind, r.party_id)].add(r.entry_id)
        return out

    def fuzzy(self, key: str, exclude: Collection[str]) -> list[tuple[str, float]]:
        return _fuzzy_names(self.session, self.version_id, self.sha256).near(key, exclude)


class MemoryIndex:
    """The same lookups from dicts built once (rescreening everyone after an import)."""

    def __init__(self, entry_keys: Iterable[tuple[str, str, str]],
                 party_keys: Iterable[tuple[PartyRef, str, str]]) -> None:
        self.entry_keys: dict[tuple[str, str], set[str]] = defaultdict(set)
        names: list[tuple[str, str]] = []
        for entry_id, key_type, key in entry_keys:
            self.entry_keys[(key_type, key)].add(entry_id)
            if key_type in (NAME, ALIAS):
                names.append((key, entry_id))
        self.names = FuzzyNames((k for k, _ in names), (e for _, e in names))
        self.party_keys: dict[tuple[str, str], set[PartyRef]] = defaultdict(set)
        for party, key_type, key in party_keys:
            self.party_keys[(key_type, key)].add(party)
        self.name_matches: dict[PartyRef, set[str]] = {}

    def entries_with(self, types: Collection[str], keys: Collection[str]
                     ) -> dict[str, set[str]]:
        out: dict[str, set[str]] = defaultdict(set)
        for t in types:
            for k in keys:
                for entry_id in self.entry_keys.get((t, k), ()):
                    out[entry_id].add(t)
                    out[entry_id].add("=" + k)
        return out

    def parties_with(self, key_type: str, keys: Collection[str]) -> set[PartyRef]:
        out: set[PartyRef] = set()
        for k in keys:
            out |= self.party_keys.get((key_type, k), set())
        return out

    def name_matches_of(self, parties: Collection[PartyRef]) -> dict[PartyRef, set[str]]:
        return {p: self.name_matches[p] for p in parties if self.name_matches.get(p)}

    def fuzzy(self, key: str, exclude: Collection[str]) -> list[tuple[str, float]]:
        return self.names.near(key, exclude)


class FuzzyNames:
    """The names and aliases of one version, for near-miss scores: token-sorted once,
    and blocked on their rarer words, so that one party is compared with the names
    sharing a word with it rather than with the whole list."""

    COMMON = 2000  # a word in more names than this does not select candidates

    def __init__(self, keys: Iterable[str], entry_ids: Iterable[str]) -> None:
        self.sorted = tuple(" ".join(sorted(k.split())) for k in keys)
        self.entry_ids = tuple(entry_ids)
        self.by_word: dict[str, list[int]] = defaultdict(list)
        for i, key in enumerate(self.sorted):
            for word in set(key.split()):
                self.by_word[word].append(i)

    def near(self, key: str, exclude: Collection[str]) -> list[tuple[str, float]]:
        if not key or not self.sorted:
            return []
        query = " ".join(sorted(key.split()))
        picked: set[int] = set()
        for word in set(query.split()):
            hits = self.by_word.get(word, ())
            if len(hits) <= self.COMMON:
                picked.update(hits)
        if not picked:  # only common words: every name (rare)
            picked = set(range(len(self.sorted)))
        order = sorted(picked)
        best: dict[str, float] = {}
        for _choice, score, j in process.extract(
            query, [self.sorted[i] for i in order], scorer=fuzz.ratio,
            score_cutoff=FUZZY_MIN, limit=10,
        ):
            entry_id = self.entry_ids[order[j]]
            if entry_id not in exclude and score > best.get(entry_id, 0.0):
                best[entry_id] = round(float(score), 1)
        return sorted(best.items())


_FUZZY_CACHE: dict[str, FuzzyNames] = {}


def _fuzzy_names(session: Session, version_id: int, sha256: str) -> FuzzyNames:
    """The version's names and aliases, read once per process: a version never changes,
    and the same file (SHA-256) always gives the same keys."""
    names = _FUZZY_CACHE.get(sha256)
    if names is None:
        rows = session.execute(
            sa.select(ENTRY_KEY.c.key, ENTRY_KEY.c.entry_id).where(
                ENTRY_KEY.c.version_id == version_id, ENTRY_KEY.c.key_type.in_((NAME, ALIAS)))
        ).all()
        names = FuzzyNames((r.key for r in rows), (r.entry_id for r in rows))
        if len(_FUZZY_CACHE) > 4:
            _FUZZY_CACHE.clear()
        _FUZZY_CACHE[sha256] = names
    return names


# -- the rules ------------------------------------------------------------------------

Index = SqlIndex | MemoryIndex


def direct_name_matches(party: Party, index: Index) -> dict[str, str]:
    """entry_id -> "name" or "alias" for the party's own name."""
    hits = index.entries_with((NAME, ALIAS), [party.name_key] if party.name_key else [])
    return {e: NAME if NAME in types else ALIAS for e, types in hits.items()}


def match_party(party: Party, index: Index) -> tuple[list[Match], list[Note]]:
    """Every match and near miss of one party against the version the index holds."""
    ref = party.ref
    matches: dict[tuple[str, str], Match] = {}
    notes: list[Note] = []

    def add(entry_id: str, on: str, score: float, via: str | None = None) -> None:
        matches.setdefault((entry_id, on), Match(ref, entry_id, on, score, via))

    named = direct_name_matches(party, index)
    for entry_id, on in named.items():
        add(entry_id, on, 100.0)

    # Address and officer: with the entry itself ...
    address = party.address_key
    officers = party.officer_keys
    by_address = set(index.entries_with(("address",), [address])) if address else set()
    by_officer = set(index.entries_with(("officer",), officers)) if officers else set()
    for entry_id in sorted(by_address & by_officer):
        add(entry_id, ADDRESS_AND_OFFICER, 100.0)
    for entry_id in sorted((by_address ^ by_officer) - set(named)):
        why = "shares an address" if entry_id in by_address else "shares an officer"
        notes.append(Note(ref, entry_id, why + " with the listed entry", 0.0))
    # ... or with a party that matches the entry by name or alias (one hop).
    near_address = index.parties_with("address", [address]) - {ref} if address else set()
    near_officer = index.parties_with("officer", officers) - {ref} if officers else set()
    counterparts = index.name_matches_of(near_address | near_officer)
    for other, entries in sorted(counterparts.items()):
        both = other in near_address and other in near_officer
        for entry_id in sorted(entries):
            if both:
                add(entry_id, ADDRESS_AND_OFFICER, 100.0, via=f"{other[0]}:{other[1]}")
            elif entry_id not in named:
                what = "an address" if other in near_address else "an officer"
                notes.append(Note(ref, entry_id, f"shares {what} with {other[0]} {other[1]}, "
                                  "which matches the listed entry", 0.0))

    # Ownership: listed owners' shares added up.
    owners = party.owner_keys()
    if owners:
        owner_hits = index.entries_with((NAME, ALIAS), [k for k, _ in owners])
        listed_parties = index.name_matches_of(
            index.parties_with(NAME, [k for k, _ in owners]) - {ref})
        by_owner: dict[str, set[str]] = defaultdict(set)
        for entry_id, marks in owner_hits.items():
            for mark in marks:
                if mark.startswith("="):
                    by_owner[mark[1:]].add(entry_id)
        party_names = _party_name_keys(index, listed_parties)
        for other, entries in listed_parties.items():
            by_owner[party_names.get(other, "")] |= entries
        total = sum(pct for k, pct in owners if by_owner.get(k))
        listed = sorted({e for k, _ in owners for e in by_owner.get(k, ())})
        for entry_id in listed:
            if total >= OWNERSHIP_THRESHOLD:
                add(entry_id, OWNERSHIP, float(total))
            elif entry_id not in named:
                notes.append(Note(ref, entry_id, f"listed owners hold {total} % "
                                  f"(below {OWNERSHIP_THRESHOLD} %)", float(total)))

    # Near misses on the name.
    exact = {e for e, _on in matches}
    for entry_id, score in index.fuzzy(party.name_key, exact):
        notes.append(Note(ref, entry_id, "name close to a listed name or alias", score))
    return list(matches.values()), notes


def _party_name_keys(index: Index, parties: Collection[PartyRef]) -> dict[PartyRef, str]:
    if not parties:
        return {}
    if isinstance(index, MemoryIndex):
        return {p: k for (t, k), ps in index.party_keys.items() if t == NAME
                for p in ps if p in parties}
    ids = sorted({p[1] for p in parties})
    return {(r.party_kind, r.party_id): r.key for r in index.session.execute(
        sa.select(PARTY_KEY.c.party_kind, PARTY_KEY.c.party_id, PARTY_KEY.c.key).where(
            PARTY_KEY.c.key_type == NAME, PARTY_KEY.c.party_id.in_(ids)))
        if (r.party_kind, r.party_id) in parties}


# -- state ----------------------------------------------------------------------------


def current_version(session: Session, at: datetime | None = None) -> Any:
    """The list version in force at `at` (default: the latest): the latest imported at
    or before it; None when none was."""
    query = sa.select(VERSION).order_by(VERSION.c.imported_at.desc(), VERSION.c.id.desc())
    if at is not None:
        query = query.where(VERSION.c.imported_at <= at)
    return session.execute(query.limit(1)).first()


def entry_infos(session: Session, version_id: int, ids: Collection[str]
                ) -> dict[str, EntryInfo]:
    out: dict[str, EntryInfo] = {}
    wanted = sorted(set(ids))
    for i in range(0, len(wanted), 500):
        for r in session.execute(sa.select(
                ENTRY.c.entry_id, ENTRY.c.list_name, ENTRY.c.name, ENTRY.c.fingerprint).where(
                ENTRY.c.version_id == version_id, ENTRY.c.entry_id.in_(wanted[i:i + 500]))):
            out[r.entry_id] = EntryInfo(r.list_name, r.name, r.fingerprint)
    return out


def load_party(session: Session, kind: str, party_id: str) -> Party | None:
    table = OPERATOR_T if kind == OPERATOR else CONSIGNEE_T
    row = session.execute(sa.select(table).where(table.c.id == party_id)).first()
    return None if row is None else Party.from_row(kind, row)


def load_parties(session: Session) -> list[Party]:
    return [Party.from_row(kind, row)
            for kind, table in ((OPERATOR, OPERATOR_T), (CONSIGNEE, CONSIGNEE_T))
            for row in session.execute(sa.select(table).order_by(table.c.id))]


def _write_matches(session: Session, parties: Collection[Party], matches: list[Match],
                   version_id: int, infos: dict[str, EntryInfo], now: datetime,
                   everyone: bool = False) -> None:
    if everyone:
        session.execute(sa.delete(MATCH))
    else:
        for p in parties:
            session.execute(sa.delete(MATCH).where(
                MATCH.c.party_kind == p.kind, MATCH.c.party_id == p.id))
    fingerprints = {p.ref: p.fingerprint for p in parties}
    rows = [{"party_kind": m.party[0], "party_id": m.party[1], "entry_id": m.entry_id,
             "matched_on": m.matched_on, "list_name": infos[m.entry_id].list_name,
             "score": m.score, "version_id": version_id,
             "entry_fingerprint": infos[m.entry_id].fingerprint,
             "party_fingerprint": fingerprints[m.party], "via": m.via, "matched_at": now}
            for m in matches if m.entry_id in infos]
    if rows:
        session.execute(sa.insert(MATCH), rows)


def _record_notes(session: Session, parties: dict[PartyRef, Party], notes: list[Note],
                  infos: dict[str, EntryInfo], now: datetime) -> int:
    from jobs.records import record_finding

    new = 0
    for n in notes:
        info = infos.get(n.entry_id)
        party = parties[n.party]
        if info is None:
            continue
        details = {"party_kind": n.party[0], "party_id": n.party[1], "party_name": party.name,
                   "entry_id": n.entry_id, "entry_name": info.name, "list": info.list_name,
                   "why": n.why, "score": n.score}
        identity = [n.party, party.fingerprint, n.entry_id, info.fingerprint, n.why]
        new += record_finding(session, kind=FINDING_KIND, subject=f"{n.party[0]}:{n.party[1]}",
                              job=FINDING_JOB, details=details, now=now, identity=identity)
    return new


def _neighbours(session: Session, party: Party | None, kind: str, party_id: str
                ) -> set[PartyRef]:
    """Parties whose matches may depend on this one: they share an address or an officer
    with it, or name it as an owner (read from the stored keys, i.e. before a change)."""
    keys = session.execute(sa.select(PARTY_KEY.c.key_type, PARTY_KEY.c.key).where(
        PARTY_KEY.c.party_kind == kind, PARTY_KEY.c.party_id == party_id)).all()
    wanted = [(r.key_type, r.key) for r in keys]
    if party is not None:
        wanted += [(r["key_type"], r["key"]) for r in party.key_rows()]
    conditions = []
    for key_type, key in set(wanted):
        if key_type in ("address", "officer"):
            conditions.append(sa.and_(PARTY_KEY.c.key_type == key_type, PARTY_KEY.c.key == key))
        elif key_type == NAME:
            conditions.append(sa.and_(PARTY_KEY.c.key_type == "owner", PARTY_KEY.c.key == key))
    if not conditions:
        return set()
    return {(r.party_kind, r.party_id) for r in session.execute(
        sa.select(PARTY_KEY.c.party_kind, PARTY_KEY.c.party_id).where(sa.or_(*conditions))
    )} - {(kind, party_id)}


SCREENING_LOCK: Final = 0x5C12EE41  # a PostgreSQL advisory lock id of our own


def lock_screening(session: Session) -> None:
    """Serialises writers of screening state (party changes, imports) for the rest of the
    transaction: two of them rescreening one party would write the same match rows.
    (SQLite write transactions are serialised already.) Reservations only read."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCREENING_LOCK})


def screen_changed_party(session: Session, kind: str, party_id: str, now: datetime) -> None:
    """After a PUT, in its transaction: the party's keys and matches replaced, and those
    of the parties next to it (shared address or officer, or owned by it) recomputed."""
    lock_screening(session)
    party = load_party(session, kind, party_id)
    near = _neighbours(session, party, kind, party_id)
    session.execute(sa.delete(PARTY_KEY).where(
        PARTY_KEY.c.party_kind == kind, PARTY_KEY.c.party_id == party_id))
    if party is not None and party.key_rows():
        session.execute(sa.insert(PARTY_KEY), party.key_rows())
    version = current_version(session)
    if version is None or party is None:
        return
    index = SqlIndex(session, version.id, version.sha256)
    todo = [party] + [p for ref in sorted(near) if (p := load_party(session, *ref)) is not None]
    for p in todo:  # the changed party first: its neighbours' hops read its matches
        matches, notes = match_party(p, index)
        infos = entry_infos(session, version.id, {m.entry_id for m in matches}
                            | {n.entry_id for n in notes})
        _write_matches(session, [p], matches, version.id, infos, now)
        _record_notes(session, {p.ref: p}, notes, infos, now)


def rescreen_everyone(session: Session, version_id: int, now: datetime) -> dict[str, int]:
    """Every party's keys rebuilt and matches recomputed against `version_id`."""
    parties = load_parties(session)
    session.execute(sa.delete(PARTY_KEY))
    key_rows = [r for p in parties for r in p.key_rows()]
    for i in range(0, len(key_rows), 5000):
        session.execute(sa.insert(PARTY_KEY), key_rows[i:i + 5000])
    index = MemoryIndex(
        ((r.entry_id, r.key_type, r.key) for r in session.execute(
            sa.select(ENTRY_KEY.c.entry_id, ENTRY_KEY.c.key_type, ENTRY_KEY.c.key).where(
                ENTRY_KEY.c.version_id == version_id))),
        (((r["party_kind"], r["party_id"]), r["key_type"], r["key"]) for r in key_rows),
    )
    for p in parties:  # pass 1: names and aliases, which the one-hop rule reads
        named = direct_name_matches(p, index)
        if named:
            index.name_matches[p.ref] = set(named)
    matches: list[Match] = []
    notes: list[Note] = []
    for p in parties:
        m, n = match_party(p, index)
        matches += m
        notes += n
    infos = entry_infos(session, version_id, {m.entry_id for m in matches}
                        | {n.entry_id for n in notes})
    _write_matches(session, parties, matches, version_id, infos, now, everyone=True)
    by_ref = {p.ref: p for p in parties}
    findings = _record_notes(session, by_ref, notes, infos, now)
    return {"parties": len(parties), "matches": len(matches), "findings": findings}


# -- reading the state ----------------------------------------------------------------


def affiliates_rule_in_force(rule_set: Any, at: datetime) -> bool:
    """Whether the rule set says the affiliates rule is in force at `at` (a rule set
    that does not date it: not in force)."""
    measures = getattr(getattr(rule_set, "spec", None), "measures", {}) or {}
    if AFFILIATES_MEASURE not in measures:
        return False
    return bool(rule_set.measure_state(AFFILIATES_MEASURE, at) == "in_force")


def _cleared() -> Any:
    return sa.exists().where(
        CLEARANCE.c.party_id == MATCH.c.party_id, CLEARANCE.c.party_kind == MATCH.c.party_kind,
        CLEARANCE.c.entry_id == MATCH.c.entry_id,
        CLEARANCE.c.party_fingerprint == MATCH.c.party_fingerprint,
        CLEARANCE.c.entry_fingerprint == MATCH.c.entry_fingerprint,
    )


def blocking_matches(session: Session, parties: Collection[PartyRef], rule_set: Any,
                     at: datetime) -> dict[PartyRef, list[Any]]:
    """Uncleared matches of these parties that block at `at`: one indexed statement,
    no list read. (Ownership blocks only while the affiliates rule is in force.)"""
    if not parties:
        return {}
    ids = sorted({p[1] for p in parties})
    query = (sa.select(MATCH.c.party_kind, MATCH.c.party_id, MATCH.c.entry_id,
                       MATCH.c.matched_on, MATCH.c.list_name)
             .where(among(dialect_of(session), MATCH.c.party_id, ids), ~_cleared())
             .order_by(MATCH.c.party_id, MATCH.c.entry_id, MATCH.c.matched_on))
    if not affiliates_rule_in_force(rule_set, at):
        query = query.where(MATCH.c.matched_on != OWNERSHIP)
    out: dict[PartyRef, list[Any]] = defaultdict(list)
    for r in session.execute(query):
        ref = (r.party_kind, r.party_id)
        if ref in parties:
            out[ref].append(r)
    return out


def list_matches(session: Session, party_id: str | None, rule_set: Any, at: datetime
                 ) -> list[dict[str, Any]]:
    """GET /v1/screening/matches: matches in force at `at` with their state."""
    cleared = _cleared().label("cleared")
    query = sa.select(MATCH, cleared).order_by(
        MATCH.c.party_id, MATCH.c.party_kind, MATCH.c.entry_id, MATCH.c.matched_on)
    if party_id is not None:
        query = query.where(MATCH.c.party_id == party_id)
    if not affiliates_rule_in_force(rule_set, at):
        query = query.where(MATCH.c.matched_on != OWNERSHIP)
    return [{"party_id": r.party_id, "party_kind": r.party_kind, "entry_id": r.entry_id,
             "list": r.list_name, "matched_on": r.matched_on, "score": r.score,
             "state": "cleared" if r.cleared else "blocking", "via": r.via}
            for r in session.execute(query.limit(10_000))]
