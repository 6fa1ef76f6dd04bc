"""The fast chain walk (PostgreSQL COPY text, ledger.verify_copy) and the parallel,
stitched walk give exactly the reference walk's answer: same bytes hashed, same
first bad seq, reason, head and count, tampering and gaps included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from ledger import audit, verify_copy
from ledger.audit import ENTRY, verify_chain, verify_chain_parallel
from ledger.chain import GENESIS_HASH, ChainReport, ChainVerifier, canonical_bytes, entry_hash
from ledger.store.engine import create_ledger_engine

# Values the template cannot simply quote: the walk must still hash them as
# canonical_bytes does (COPY escapes, quotes, control characters, non-ASCII).
ODD_TEXT = ['say "hi"', "back\\slash", "tab\there", "new\nline", "cr\rret", "\x01\x1f",
            "\x08\x0b\x0c", "Prüfung §7 — ✓ 🚀", "", " ", "\\N", "N", "null", "a\\\\b"]
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def _entries(n: int, odd: bool = False) -> Iterator[dict[str, Any]]:
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        at = START + timedelta(seconds=seq, microseconds=(seq * 7919) % 1_000_000)
        fields: dict[str, Any] = {
            "seq": seq, "kind": "hold", "reservation_id": f"res_{seq:032x}",
            "line_no": seq % 3, "country": "SG", "operator_id": f"op-{seq % 7}",
            "consignee_id": f"sg-lab-{seq % 11}", "path": "lpp", "tpp": 100 * seq,
            "draws": [["footprint", f"op-{seq % 7}:SG", "all", 100 * seq],
                      ["lpp", f"consignee:sg-lab-{seq % 11}", "2026", 100 * seq]],
            "effective_at": at, "recorded_at": at, "actor": "key_1",
            "idempotency_key": f"k{seq}" if seq % 4 else None,
            "rule_set": "ai-diffusion-2025", "rule_set_version": "2026-12-01.1",
            "note": None, "encoding": 1,
        }
        if odd:
            text = ODD_TEXT[seq % len(ODD_TEXT)]
            column = ("note", "idempotency_key", "actor", "consignee_id", "rule_set")[seq % 5]
            fields[column] = text
            if seq % 6 == 0:  # whole seconds, and trailing zeros PostgreSQL trims
                fields["effective_at"] = at.replace(microsecond=0)
                fields["recorded_at"] = at.replace(microsecond=120_000)
            if seq % 9 == 0:  # shapes the msgspec decoder does not take
                fields["draws"] = [["lpp", text, "2026", -5, "extra"], [1, 2, 3, 4]]
            if seq % 13 == 0:
                fields["draws"] = [["lpp", "k", "2026", 7, {"nested": [1, "x"]}]]
            if seq % 17 == 0:
                fields["draws"] = []
        fields["prev_hash"] = prev
        fields["hash"] = prev = entry_hash(prev, fields)
        yield fields


def _load(engine: sa.Engine, n: int, odd: bool = False) -> None:
    rows = list(_entries(n, odd))
    with engine.begin() as conn:
        conn.execute(sa.insert(ENTRY), rows)
        conn.exec_driver_sql(f"UPDATE chain_head SET seq = {n}, hash = '{rows[-1]['hash']}'")


def _unguard(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE entry DISABLE TRIGGER entry_no_update_delete")
    else:
        conn.exec_driver_sql("DROP TRIGGER entry_no_update")
        conn.exec_driver_sql("DROP TRIGGER entry_no_delete")


def _reference(engine: sa.Engine) -> ChainReport:
    """The plain walk over SQLAlchemy rows (what `ledger verify` did before COPY)."""
    return audit._rows_walk(engine, 0, None, ChainVerifier()).report


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = create_ledger_engine(pg_url)
    yield engine
    engine.dispose()


def test_fast_bytes_are_canonical_bytes_for_odd_values(
    pg_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(pg_engine, 400, odd=True)
    assert verify_copy.copy_walk_usable(pg_engine)
    import psycopg

    conn = psycopg.connect(verify_copy.pg_conninfo(pg_url_of(pg_engine)), autocommit=True)
    conn.execute("SET datestyle TO 'ISO, YMD'")
    sql = (f"COPY (SELECT {', '.join(verify_copy.COPY_COLUMNS)} FROM entry ORDER BY seq) "
           "TO STDOUT")
    lines = list(verify_copy._copy_lines(conn, sql))
    conn.close()
    with pg_engine.connect() as db:
        rows = db.execute(sa.select(ENTRY).order_by(ENTRY.c.seq)).all()
    unproven = []
    for line, row in zip(lines, rows, strict=True):
        body = verify_copy.fast_canonical(line[:-1].split(b"\t"))
        if body is None:
            unproven.append(row.seq)
        else:
            assert body == canonical_bytes(row._mapping), row.seq
    # Left to the reference: nested draws, and escapes inside draws' JSON.
    assert 30 <= len(unproven) <= 60
    # The walk itself: every entry accepted, and the reference asked only about those.
    asked: list[int] = []
    original = verify_copy._Walk._reference

    def counting(self: Any, verifier: ChainVerifier, seq: int) -> bool:
        asked.append(seq)
        return original(self, verifier, seq)

    monkeypatch.setattr(verify_copy._Walk, "_reference", counting)
    report = verify_chain(pg_engine)
    assert report == _reference(pg_engine)
    assert report.ok and report.entries == 400
    assert asked == unproven


def pg_url_of(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_fast_walk_progress_and_resume_from_a_checkpoint(pg_engine: sa.Engine) -> None:
    _load(pg_engine, 10)
    seen: list[int] = []
    assert verify_chain(pg_engine, batch=4, progress=seen.append).ok
    assert seen == [4, 8, 10]
    with pg_engine.connect() as db:
        at5 = db.execute(sa.select(ENTRY.c.hash).where(ENTRY.c.seq == 5)).scalar_one()
    report = verify_chain(pg_engine, 5, at5)
    assert report == _reference_from(pg_engine, 5, at5)
    assert report.ok and report.entries == 5
    wrong = verify_chain(pg_engine, 5, GENESIS_HASH)
    assert wrong == _reference_from(pg_engine, 5, GENESIS_HASH)
    assert not wrong.ok and wrong.first_bad_seq == 6 and wrong.entries == 0


def _reference_from(engine: sa.Engine, seq: int, hash_: str) -> ChainReport:
    return audit._rows_walk(engine, seq, None, ChainVerifier(seq, hash_)).report


# 300 entries in 6 ranges (2 processes x 3): boundaries after seq 50, 100, ..., 250.
TAMPERS = {
    "content in the 2nd range": ["UPDATE entry SET tpp = tpp + 1 WHERE seq = 75"],
    "first entry of a range": ["UPDATE entry SET note = 'x' WHERE seq = 101"],
    "last entry of a range": ["UPDATE entry SET kind = 'commit' WHERE seq = 150"],
    "link broken at a boundary": [f"UPDATE entry SET prev_hash = '{'ab' * 32}' WHERE seq = 151"],
    "stored hash at a boundary": [f"UPDATE entry SET hash = '{'cd' * 32}' WHERE seq = 200"],
    "a rewritten range, relinked": [],  # filled in by the test: a valid chain from 201
    "gap inside a range": ["DELETE FROM entry WHERE seq = 120"],
    "gap at a range start": ["DELETE FROM entry WHERE seq = 101"],
    "gap at a range end": ["DELETE FROM entry WHERE seq = 100"],
    "a whole range missing": ["DELETE FROM entry WHERE seq > 100 AND seq <= 150"],
    "two ranges missing": ["DELETE FROM entry WHERE seq > 100 AND seq <= 200"],
    "the tail missing": ["DELETE FROM entry WHERE seq > 240"],
    "last entry": ["UPDATE entry SET tpp = 1 WHERE seq = 300"],
    "genesis link": [f"UPDATE entry SET prev_hash = '{'01' * 32}' WHERE seq = 1"],
    "two tampers: the first named": ["UPDATE entry SET tpp = 1 WHERE seq = 260",
                                     "UPDATE entry SET tpp = 1 WHERE seq = 90"],
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_parallel_walk_names_what_the_plain_walk_names(engine: sa.Engine, case: str) -> None:
    _load(engine, 300)
    with engine.begin() as conn:
        _unguard(conn)
        for statement in TAMPERS[case]:
            conn.exec_driver_sql(statement)
        if case == "a rewritten range, relinked":
            # An attacker re-hashes 201..300 from a changed entry 201 on: a valid chain
            # in itself, whose first link no longer matches entry 200.
            rows = [dict(r._mapping) for r in conn.execute(
                sa.select(ENTRY).where(ENTRY.c.seq > 200).order_by(ENTRY.c.seq))]
            prev = "ee" * 32
            for row in rows:
                row["tpp"] += 1 if row["seq"] == 201 else 0
                row["prev_hash"] = prev
                row["hash"] = prev = entry_hash(prev, row)
            conn.execute(sa.delete(ENTRY).where(ENTRY.c.seq > 200))
            conn.execute(sa.insert(ENTRY), rows)
    reference = _reference(engine)
    assert not reference.ok or case == "the tail missing"
    plain = verify_chain(engine)
    parallel = verify_chain_parallel(engine, processes=2, min_entries=0, ranges_per_process=3)
    assert plain == reference
    assert parallel == reference


def test_parallel_walk_on_an_intact_chain_and_past_the_head(engine: sa.Engine) -> None:
    _load(engine, 300)
    rows = list(_entries(310))[300:]
    with engine.begin() as conn:  # appended after chain_head was read: walked on
        conn.execute(sa.insert(ENTRY), rows)
    seen: list[int] = []
    parallel = verify_chain_parallel(engine, processes=2, min_entries=0, ranges_per_process=3,
                                     progress=seen.append)
    assert parallel == _reference(engine) == verify_chain(engine)
    assert parallel.ok and parallel.entries == 310 and parallel.head == rows[-1]["hash"]
    assert max(seen) >= 300


def test_stitch_checks_each_ranges_first_link() -> None:
    def part(first: int, prev: str, last: int, head: str, ok: bool = True) -> Any:
        return verify_copy.WalkResult(first, prev, last, ChainReport(
            ok, last - first + 1 if ok else 0, head, None if ok else first, None))

    a, b = "aa" * 32, "bb" * 32
    _, report = audit.stitch([part(1, GENESIS_HASH, 10, a), part(11, a, 20, b)])
    assert report is None
    _, report = audit.stitch([part(1, GENESIS_HASH, 10, a), part(11, b, 20, b)])
    assert report == ChainReport(False, 10, a, 11,
                                 "prev_hash does not match the previous entry's hash")
    _, report = audit.stitch([part(1, GENESIS_HASH, 10, a), part(12, a, 20, b)])
    assert report == ChainReport(False, 10, a, 11, "gap: expected seq 11, found 12")
