"""Signed heads, witnesses and tampering by whoever runs the database (issue 11).

Every tampering is real SQL with the append-only triggers out of the way, as a
DBA would do it (PostgreSQL: session_replication_role = replica; SQLite: drop
the triggers, change the rows, recreate them). Each row of the table is then
put to every verification: `ledger verify` (no witness), `ledger verify
--witness FILE`, the verify jobs (incremental after a checkpoint at the head,
and the full walk), /v1/audit/verify's check, and the next write. Run with
`pytest -s` to see the table.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.bundle import BundleError, export_bundle, verify_bundle
from jobs.context import JobContext
from jobs.verify import verify, verify_full
from ledger.bootstrap import head_signer
from ledger.chain import entry_hash
from ledger.cli import main
from ledger.clock import ManualClock
from ledger.errors import ChainBroken
from ledger.heads import (
    HEAD_PREFIX,
    SIGNED_HEAD,
    KeyRing,
    SignedHead,
    audit_verify,
    check_heads,
    create_signing_key,
    head_message,
    latest_head,
    read_witness,
)
from ledger.job_records import list_findings
from ledger.merkle import MemoryTree, leaf_hash
from ledger.service import Ledger
from ledger.settings import Settings, get_settings
from ledger.store.txn import ENTRY
from tests.conftest import _admin_engine
from tests.factories import consignee, line, operator, reserve

SQLITE_TRIGGERS = {
    "entry": ("entry_no_update", "entry_no_delete"),
    "signed_head": ("signed_head_no_update", "signed_head_no_delete"),
}


@dataclass
class Books:
    ledger: Ledger
    settings: Settings
    key_path: Path
    witness: Path
    url: str


def _settings(url: str, key: Path, witness: Path, **more: Any) -> Settings:
    return Settings(database_url=url, redis_url=None, signing_key_path=str(key),
                    witness_file=str(witness), **more)


def _wait_witness(ledger: Ledger, seq: int) -> None:
    publisher = ledger.heads.listeners[0].__self__  # type: ignore[union-attr]
    assert publisher.file.wait(seq), f"witness file never reached seq {seq}"


def _grow(ledger: Ledger, upto: int) -> None:
    """Reserves one-line holds (one entry, one transaction, one signed head each)."""
    with ledger.engine.connect() as conn:
        seq = conn.exec_driver_sql("SELECT seq FROM chain_head").scalar_one()
    for _ in range(seq, upto):
        assert reserve(ledger, line("SG", "sg-lab", quantity=1)).reservation is not None


@pytest.fixture
def books(db_url: str, engine: sa.Engine, rule_set, clock: ManualClock,  # type: ignore[no-untyped-def]
          tmp_path: Path) -> Books:
    key = tmp_path / "signing.pem"
    create_signing_key(key)
    witness = tmp_path / "witness.jsonl"
    settings = _settings(db_url, key, witness)
    ledger = Ledger(engine, rule_set, clock, heads=head_signer(settings))
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    _grow(ledger, 19)
    return Books(ledger, settings, key, witness, db_url)


def dba(engine: sa.Engine, *statements: str | Callable[[sa.Connection], None]) -> None:
    """Runs SQL the way a DBA with superuser rights can: the append-only triggers off."""

    def run(conn: sa.Connection) -> None:
        for statement in statements:
            if isinstance(statement, str):
                conn.exec_driver_sql(statement)
            else:
                statement(conn)

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            run(conn)
            return
        saved = {name: conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
        ).scalar_one() for names in SQLITE_TRIGGERS.values() for name in names}
        for name in saved:
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
        run(conn)
        for sql in saved.values():
            conn.exec_driver_sql(sql)


def _insert_forged(engine: sa.Engine, move_head: bool) -> None:
    """Entry 28 with correct hashes (27's fields, a thousand times the TPP), linked to 27;
    plain SQL inserts (no trigger refuses an INSERT)."""
    with engine.begin() as conn:
        row = dict(conn.execute(sa.select(ENTRY).where(ENTRY.c.seq == 27)).one()._mapping)
        row.update(seq=28, tpp=row["tpp"] * 1000, prev_hash=row["hash"],
                   reservation_id="forged-" + uuid.uuid4().hex[:8])
        row["hash"] = entry_hash(row["prev_hash"], row)
        conn.execute(sa.insert(ENTRY).values(row))
        if move_head:
            conn.execute(sa.text("UPDATE chain_head SET seq = 28, hash = :h"), {"h": row["hash"]})


ROLL_BACK_TO_26 = "UPDATE chain_head SET seq = 26, hash = (SELECT hash FROM entry WHERE seq = 26)"
ROLL_BACK_TO_19 = "UPDATE chain_head SET seq = 19, hash = (SELECT hash FROM entry WHERE seq = 19)"


def _swap(engine: sa.Engine) -> None:
    dba(engine, "UPDATE entry SET seq = -10 WHERE seq = 10",
        "UPDATE entry SET seq = 10 WHERE seq = 11",
        "UPDATE entry SET seq = 11 WHERE seq = -10")


def _rehash_from(seq: int) -> Callable[[sa.Connection], None]:
    """Recomputes every hash from `seq` on (and the head's): the chain is whole again."""

    def rehash(conn: sa.Connection) -> None:
        prev = conn.execute(sa.select(ENTRY.c.hash).where(ENTRY.c.seq == seq - 1)).scalar_one()
        rows = conn.execute(sa.select(ENTRY).where(ENTRY.c.seq >= seq).order_by(ENTRY.c.seq))
        for row in [dict(r._mapping) for r in rows]:
            row["prev_hash"] = prev
            prev = entry_hash(prev, row)
            conn.execute(sa.update(ENTRY).where(ENTRY.c.seq == row["seq"])
                         .values(prev_hash=row["prev_hash"], hash=prev))
        conn.execute(sa.text("UPDATE chain_head SET hash = :h"), {"h": prev})

    return rehash


def _swap_fields(a: int, b: int) -> Callable[[sa.Connection], None]:
    """Swaps what entries a and b say (everything but seq and the hashes)."""
    keep = {"seq", "prev_hash", "hash"}

    def swap(conn: sa.Connection) -> None:
        ra, rb = (dict(conn.execute(sa.select(ENTRY).where(ENTRY.c.seq == s)).one()._mapping)
                  for s in (a, b))
        for seq, row in ((a, rb), (b, ra)):
            conn.execute(sa.update(ENTRY).where(ENTRY.c.seq == seq)
                         .values({k: v for k, v in row.items() if k not in keep}))

    return swap


# -- backups -------------------------------------------------------------------------


def _backup(books: Books) -> Callable[[], None]:
    """Takes a backup now; returns the function that restores it over the live database."""
    engine = books.ledger.engine
    if engine.dialect.name == "postgresql":
        name = sa.engine.make_url(books.url).database
        copy = f"{name}_backup"
        engine.dispose()
        admin = _admin_engine()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')

        def restore() -> None:
            engine.dispose()
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
                conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{copy}"')
                conn.exec_driver_sql(f'DROP DATABASE "{copy}"')
            admin.dispose()

        return restore
    path = Path(str(engine.url.database))
    copy_path = path.with_suffix(".backup")
    engine.dispose()
    with sqlite3.connect(path) as src, sqlite3.connect(copy_path) as dst:
        src.backup(dst)

    def restore_sqlite() -> None:
        engine.dispose()
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        shutil.copy(copy_path, path)

    return restore_sqlite


# -- the verifications -----------------------------------------------------------------

SEQ = re.compile(r"at seq (\d+)")


def _cli_verify(books: Books, capsys: pytest.CaptureFixture[str], monkeypatch: Any,
                witness: bool) -> tuple[str, str]:
    monkeypatch.setenv("LEDGER_DATABASE_URL", books.url)
    monkeypatch.setenv("LEDGER_SIGNING_KEY_PATH", str(books.key_path))
    get_settings.cache_clear()
    capsys.readouterr()
    try:
        code = main(["verify", "--processes", "1",
                     *(["--witness", str(books.witness)] if witness else [])])
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    bad = [ln for ln in out.splitlines() if "BROKEN" in ln or "TRUNCATED" in ln
           or "UNSIGNED" in ln or "BAD SIGNATURE" in ln]
    if code == 0:
        assert not bad, out
        return "ok", out
    assert bad, out
    seqs = [int(SEQ.search(ln).group(1)) for ln in bad]  # type: ignore[union-attr]
    first = bad[seqs.index(min(seqs))]
    return f"caught at {min(seqs)}", first


def _job(books: Books, full: bool) -> str:
    ctx = JobContext(books.ledger, books.settings)
    result = verify_full(ctx) if full else verify(ctx)
    if result.outcome == "ok":
        return "ok"
    return f"caught at {result.figures['first_bad_seq']}"


def _api(books: Books) -> str:
    assert books.ledger.heads is not None
    verdict = audit_verify(books.ledger.engine, books.ledger.heads.keys)
    return "ok" if verdict.ok else f"caught at {verdict.first_bad_seq}"


def _next_write(books: Books) -> str:
    try:
        reserve(books.ledger, line("SG", "sg-lab", quantity=1))
    except ChainBroken as exc:
        return f"503 chain-broken at {exc.seq}"
    return "ok"


TAMPERINGS: dict[str, Callable[[Books], Any]] = {
    "edit one entry's tpp (seq 12)":
        lambda b: dba(b.ledger.engine, "UPDATE entry SET tpp = tpp + 1 WHERE seq = 12"),
    "delete the last entry, leave chain head":
        lambda b: dba(b.ledger.engine, "DELETE FROM entry WHERE seq = 27"),
    "delete the last entry, roll the chain head back":
        lambda b: dba(b.ledger.engine, "DELETE FROM entry WHERE seq = 27", ROLL_BACK_TO_26),
    "delete the last 8 entries and the signed heads covering them":
        lambda b: dba(b.ledger.engine, "DELETE FROM entry WHERE seq > 19",
                      "DELETE FROM signed_head WHERE seq > 19", ROLL_BACK_TO_19),
    "append a forged entry with correct hashes, move the head":
        lambda b: _insert_forged(b.ledger.engine, move_head=True),
    "append a forged entry, leave the head":
        lambda b: _insert_forged(b.ledger.engine, move_head=False),
    "reorder two entries (seq 10 and 11)": lambda b: _swap(b.ledger.engine),
    "reorder two entries (seq 10 and 11), rehash every entry after them":
        lambda b: dba(b.ledger.engine, _swap_fields(10, 11), _rehash_from(10)),
    "restore an older backup (seq 19 of 27)": None,  # type: ignore[dict-item]
}
# The seq that verification with the witness must name, and its message if fixed.
EXPECTED: dict[str, tuple[int, str | None]] = {
    "edit one entry's tpp (seq 12)": (12, "hash does not match"),
    "delete the last entry, leave chain head":
        (27, "the database ends at seq 26; the witness has a signed head at seq 27"),
    "delete the last entry, roll the chain head back":
        (27, "the database ends at seq 26; the witness has a signed head at seq 27"),
    "delete the last 8 entries and the signed heads covering them":
        (20, "the database ends at seq 19; the witness has a signed head at seq 27"),
    "append a forged entry with correct hashes, move the head":
        (28, "not covered by any signed head"),
    "append a forged entry, leave the head": (28, "past the head"),
    "reorder two entries (seq 10 and 11)": (10, "prev_hash does not match"),
    "reorder two entries (seq 10 and 11), rehash every entry after them":
        (10, "history was rewritten"),
    "restore an older backup (seq 19 of 27)":
        (20, "the database ends at seq 19; the witness has a signed head at seq 27"),
}
TABLE: dict[str, dict[str, list[str]]] = {}


@pytest.fixture(scope="module", autouse=True)
def _print_table() -> Iterator[None]:
    yield
    if not TABLE:
        return
    cols = ("ledger verify", "ledger verify --witness", "job: incremental / full",
            "/v1/audit/verify", "next write")
    print("\n\n| tampering | db | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for name, per_db in TABLE.items():
        for db, cells in sorted(per_db.items()):
            print(f"| {name} | {db} | " + " | ".join(cells) + " |")


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_tampering_is_caught_at_its_seq_by_verify_with_the_witness(
    books: Books, tampering: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    ledger = books.ledger
    restore = _backup(books) if tampering.startswith("restore") else None
    _grow(ledger, 27)
    _wait_witness(ledger, 27)
    assert verify(JobContext(ledger, books.settings)).outcome == "ok"  # checkpoint at 27
    tamper = TAMPERINGS[tampering]
    if restore is not None:
        restore()
    else:
        tamper(books)
    witness_cell, message = _cli_verify(books, capsys, monkeypatch, witness=True)
    plain_cell, _ = _cli_verify(books, capsys, monkeypatch, witness=False)
    cells = [plain_cell, witness_cell,
             f"{_job(books, full=False)} / {_job(books, full=True)}", _api(books),
             _next_write(books)]
    TABLE.setdefault(tampering, {})[ledger.engine.dialect.name] = cells
    seq, text = EXPECTED[tampering]
    assert witness_cell == f"caught at {seq}", message
    if text:
        assert text in message, message


# -- signed heads, keys, witnesses, bundles ---------------------------------------------


def _roots(engine: sa.Engine) -> MemoryTree:
    with engine.connect() as conn:
        hashes = conn.execute(sa.select(ENTRY.c.hash).order_by(ENTRY.c.seq)).scalars().all()
    return MemoryTree([leaf_hash(h) for h in hashes])


def test_every_write_signs_its_head_with_the_merkle_root_and_the_witness_gets_it(
    books: Books
) -> None:
    ledger = books.ledger
    assert ledger.heads is not None
    _wait_witness(ledger, 19)
    head = latest_head(ledger.engine)
    assert head is not None and head.seq == 19
    with ledger.engine.connect() as conn:
        heads = [SignedHead.from_row(r) for r in conn.execute(
            sa.select(SIGNED_HEAD).order_by(SIGNED_HEAD.c.seq))]
        chain = conn.execute(sa.text("SELECT seq, hash FROM chain_head")).one()
    assert [h.seq for h in heads] == list(range(1, 20))  # one per write transaction
    assert (head.seq, head.hash) == tuple(chain)
    tree = _roots(ledger.engine)
    for h in heads:
        assert h.root == tree.root(h.seq).hex()
        assert h.message() == HEAD_PREFIX + json.dumps(
            {"v": 1, "seq": h.seq, "hash": h.hash, "root": h.root, "at": h.at,
             "key_id": h.key_id}, sort_keys=True, separators=(",", ":")).encode()
        assert ledger.heads.keys.check(h) is None
    assert head.key_id == ledger.heads.keys.current_id
    assert [h.doc() for h in read_witness(str(books.witness))] == [h.doc() for h in heads]
    # A changed byte of the signed fields fails the signature.
    forged = SignedHead(**{**head.doc(), "seq": head.seq + 1})
    assert "bad signature" in (ledger.heads.keys.check(forged) or "")
    # The signed_head table is append-only too.
    with pytest.raises(sa.exc.DBAPIError), ledger.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM signed_head WHERE seq = 19")


def test_two_writers_on_one_database_keep_each_others_roots(
    books: Books, rule_set, clock: ManualClock  # type: ignore[no-untyped-def]
) -> None:
    """Another process (its own HeadSigner) writes in between: each catches its frontier
    up from the entries, and every head's root is the tree's."""
    other = Ledger(books.ledger.engine, rule_set, clock, heads=head_signer(books.settings))
    for i in range(6):
        _grow(books.ledger if i % 2 else other, 20 + i)
    tree = _roots(books.ledger.engine)
    with books.ledger.engine.connect() as conn:
        heads = [SignedHead.from_row(r) for r in conn.execute(sa.select(SIGNED_HEAD))]
    assert max(h.seq for h in heads) == 25
    assert all(h.root == tree.root(h.seq).hex() for h in heads)
    assert check_heads(books.ledger.engine, books.ledger.heads.keys).ok  # type: ignore[union-attr]


def test_a_head_signed_by_a_rotated_out_key_verifies_and_an_unknown_key_does_not(
    books: Books, rule_set, clock: ManualClock, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    old_ring = books.ledger.heads.keys  # type: ignore[union-attr]
    retired = tmp_path / "retired"
    retired.mkdir()
    (retired / "old.pem").write_text(old_ring.pems()[old_ring.current_id or ""])
    new_key = tmp_path / "new.pem"
    create_signing_key(new_key)
    settings = _settings(books.url, new_key, books.witness,
                         signing_public_keys=str(retired))
    rotated = Ledger(books.ledger.engine, rule_set, clock, heads=head_signer(settings))
    _grow(rotated, 23)
    ring = rotated.heads.keys  # type: ignore[union-attr]
    assert set(ring.public) == {old_ring.current_id, ring.current_id}
    with rotated.engine.connect() as conn:
        kids = dict(conn.execute(sa.select(SIGNED_HEAD.c.seq, SIGNED_HEAD.c.key_id)).all())
    assert kids[19] == old_ring.current_id and kids[20] == ring.current_id
    assert check_heads(rotated.engine, ring).ok  # the retired key still verifies
    # Without the retired key, its heads are signed by an unknown key.
    alone = KeyRing.load(str(new_key))
    report = check_heads(rotated.engine, alone)
    assert report.first() is not None and report.first().seq == 1  # type: ignore[union-attr]
    assert "unknown key" in report.first().message  # type: ignore[union-attr]
    # A witnessed head signed by a key nobody knows is refused.
    stranger = tmp_path / "stranger.pem"
    create_signing_key(stranger)
    good = latest_head(rotated.engine)
    assert good is not None
    fake = KeyRing.load(str(stranger)).sign(good.seq, good.hash, good.root,
                                            rotated.clock.now())
    report = check_heads(rotated.engine, ring, [fake])
    assert [(p.kind, p.seq) for p in report.problems] == [("signature", 23)]
    # And a head whose message names one key but is signed by another.
    swapped = SignedHead(**{**fake.doc(), "key_id": ring.current_id or ""})
    assert "bad signature" in (ring.check(swapped) or "")
    assert head_message(1, "00", "11", "t", "k").startswith(HEAD_PREFIX)


def test_a_write_on_a_broken_chain_is_refused_and_recorded(books: Books) -> None:
    dba(books.ledger.engine, "DELETE FROM entry WHERE seq = 19")
    with pytest.raises(ChainBroken) as caught:
        reserve(books.ledger, line("SG", "sg-lab", quantity=1))
    assert caught.value.seq == 19 and "entries deleted" in caught.value.detail
    findings = list_findings(books.ledger.engine, kind="chain_broken")
    assert findings and findings[0]["details"]["seq"] == 19 and findings[0]["job"] == "write"


class _Receiver(BaseHTTPRequestHandler):
    fail_first = 2
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.fail_first > 0:
            _Receiver.fail_first -= 1
            self.send_response(500)
        else:
            _Receiver.received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_webhook_witness_retries_and_ends_with_the_latest_head(
    books: Books, rule_set, clock: ManualClock, monkeypatch: Any  # type: ignore[no-untyped-def]
) -> None:
    import ledger.witness as witness

    monkeypatch.setattr(witness, "BACKOFF_START", 0.05)
    _Receiver.fail_first, _Receiver.received = 2, []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/heads"
        settings = Settings(database_url=books.url, signing_key_path=str(books.key_path),
                            witness_webhooks=url)
        ledger = Ledger(books.ledger.engine, rule_set, clock, heads=head_signer(settings))
        _grow(ledger, 24)
        hook = ledger.heads.listeners[0].__self__.webhooks[0]  # type: ignore[union-attr]
        assert hook.wait(24, timeout=10)
        assert _Receiver.fail_first == 0  # two failures, retried
        assert _Receiver.received[-1] == latest_head(ledger.engine).doc()  # type: ignore[union-attr]
        # Heads are cumulative: only ever newer heads are sent (coalesced, never queued).
        seqs = [doc["seq"] for doc in _Receiver.received]
        assert seqs == sorted(set(seqs)) and seqs[-1] == 24
        hook.close()
    finally:
        server.shutdown()


def test_bundles_carry_signed_heads_with_their_roots(books: Books, clock: ManualClock) -> None:
    out = io.BytesIO()
    summary = export_bundle(books.ledger.engine, 1, out, clock.now(), str(books.key_path))
    assert summary.heads == 19
    data = out.getvalue()
    pinned = books.ledger.heads.keys.pems()[books.ledger.heads.keys.current_id or ""]  # type: ignore[union-attr]
    report = verify_bundle(data, pinned)
    assert report.heads == 19 and report.roots_checked
    lines = data.split(b"\n")
    at = next(i for i, ln in enumerate(lines) if b'"type":"head"' in ln and b'"seq":7,' in ln)
    doc = json.loads(lines[at])
    doc["root"] = "ab" * 32
    lines[at] = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(BundleError, match="signed head seq 7"):
        verify_bundle(b"\n".join(lines), pinned)


def test_a_restarted_writer_refuses_a_database_restored_to_before_the_witness(
    books: Books, rule_set, clock: ManualClock  # type: ignore[no-untyped-def]
) -> None:
    restore = _backup(books)
    _grow(books.ledger, 27)
    _wait_witness(books.ledger, 27)
    restore()
    restarted = Ledger(books.ledger.engine, rule_set, clock, heads=head_signer(books.settings))
    with pytest.raises(ChainBroken, match="below the last signed head at seq 27"):
        reserve(restarted, line("SG", "sg-lab", quantity=1))


def test_concurrent_writers_in_two_processes_sign_every_head_consistently(
    books: Books, rule_set, clock: ManualClock  # type: ignore[no-untyped-def]
) -> None:
    """Two ledgers (as two processes would have: their own signer and frontier) written
    by 8 threads at once: no false chain-broken after a lock wait, and every head's
    signature, hash and root verify."""
    from concurrent.futures import ThreadPoolExecutor

    other = Ledger(books.ledger.engine, rule_set, clock, heads=head_signer(books.settings))
    pair = (books.ledger, other)

    def attempt(i: int) -> bool:
        return reserve(pair[i % 2], line("SG", "sg-lab", quantity=1)).reservation is not None

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(attempt, range(40)))
    report = check_heads(books.ledger.engine, books.ledger.heads.keys)  # type: ignore[union-attr]
    assert report.ok, report.problems
    assert report.last_signed == 59 and report.signed_heads == 59


def test_a_restarted_writer_starts_its_frontier_from_stored_nodes_it_can_trust(
    books: Books, rule_set, clock: ManualClock  # type: ignore[no-untyped-def]
) -> None:
    from ledger.merkle_store import MERKLE_NODE, catch_up

    engine = books.ledger.engine
    catch_up(engine, upto=16)  # nodes for the first 16 leaves; 17..19 come from entries
    restarted = head_signer(books.settings)
    assert restarted is not None
    with Session(engine) as session:
        frontier = restarted._from_stored_nodes(session, 19)
    assert frontier is not None and frontier.size == 19
    assert frontier.root().hex() == latest_head(engine).root  # type: ignore[union-attr]
    # A node changed in the table: its root is not the signed one, so it is not used.
    dba(engine, lambda conn: conn.execute(
        sa.update(MERKLE_NODE).where(MERKLE_NODE.c.level == 4).values(hash=bytes(32))))
    with Session(engine) as session:  # read from the entries instead: the right root
        fallback = restarted._from_stored_nodes(session, 19)
    assert fallback is not None and fallback.root() == frontier.root()
    ledger = Ledger(engine, rule_set, clock, heads=restarted)
    _grow(ledger, 22)  # falls back to the entries: the roots are right all the same
    assert check_heads(engine, restarted.keys).ok
