"""The COPY floor of batch reservations: how fast this PostgreSQL takes, durably, the
rows that batch reservation lines write, when nothing but COPY writes them.

What one single-line reservation of a batch writes (ledger/operations.py
`Batch.reserve` and `Batch._hold`, written by ledger/store/txn.py `flush`): one row
each in reservation, reservation_line, entry and idempotency_record, one row per
bucket draw in line_draw and active_hold, and, per transaction, the balance deltas
of the touched buckets and the chain head. The floor writes exactly that:

1. a small real batch goes through the server, and its rows are read back from the
   bench database (templates: real shapes, real values);
2. N lines' worth of rows are built from them beforehand (fresh reservation ids,
   idempotency keys, entry seqs and hashes; the outcome names the new id);
3. they are COPYed (binary) into a fresh database migrated like the real one, in
   transactions of `per_txn` lines, each with the bucket and chain head updates,
   each committed with synchronous_commit on.

Only step 3 is timed. It leaves out everything the service does besides writing
(locks, reads, decisions, hashing, HTTP), so the batch figure's ratio to it says
how much of the database's own write speed the service keeps.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import sqlalchemy as sa
from psycopg.rows import dict_row

from bench.seed import CONSIGNEES, COUNTRY, LINE_TPP, fresh_database

# Tables a reservation line writes, in the order flush inserts them.
TABLES = ("reservation", "reservation_line", "line_draw", "active_hold", "entry",
          "idempotency_record")


@dataclass
class FloorResult:
    lines: int
    seconds: float
    per_txn: int
    rows: int  # rows COPYed, all tables

    @property
    def rate(self) -> float:
        return self.lines / self.seconds


@dataclass
class Template:
    reservation: dict[str, Any]
    lines: list[dict[str, Any]]
    draws: list[dict[str, Any]]
    holds: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    idempotency: dict[str, Any]


def _conninfo(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as a libpq one."""
    return sa.engine.make_url(url).set(drivername="postgresql") \
        .render_as_string(hide_password=False)


def real_batch(base: str, key: str, run: str, size: int = 200) -> None:
    """One real batch of `size` single-line reservations through the server."""
    items = [{"idempotency_key": f"{run}-{i}",
              "lines": [{"destination_country": COUNTRY, "operator_id": "bench-op",
                         "consignee_id": f"bench-c{(i * 7) % CONSIGNEES}", "tpp": LINE_TPP}],
              "hold_seconds": 86400} for i in range(size)]
    response = httpx.post(base + "/v1/reservations:batch", json={"reservations": items},
                          headers={"Authorization": f"Bearer {key}"}, timeout=60)
    response.raise_for_status()


def read_templates(url: str, run: str) -> list[Template]:
    """The rows the real batch `run` wrote, grouped per reservation."""
    with psycopg.connect(_conninfo(url), row_factory=dict_row) as conn:
        reservations = conn.execute(
            "SELECT * FROM reservation WHERE idempotency_key LIKE %s ORDER BY id",
            [run + "-%"]).fetchall()
        if not reservations:
            raise RuntimeError(f"the real batch {run} wrote no reservation")
        rids = [r["id"] for r in reservations]

        def by_rid(sql: str) -> dict[str, list[dict[str, Any]]]:
            out: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in conn.execute(sql, [rids]).fetchall():
                out[row["reservation_id"]].append(row)
            return out

        lines = by_rid("SELECT * FROM reservation_line WHERE reservation_id = ANY(%s)")
        draws = by_rid("SELECT * FROM line_draw WHERE reservation_id = ANY(%s)")
        holds = by_rid("SELECT * FROM active_hold WHERE reservation_id = ANY(%s)")
        entries = by_rid("SELECT * FROM entry WHERE reservation_id = ANY(%s) "
                         "AND kind = 'hold' ORDER BY seq")
        records = {(r["actor"], r["key"]): r for r in conn.execute(
            "SELECT * FROM idempotency_record WHERE key LIKE %s", [run + "-%"]).fetchall()}
    return [Template(r, lines[r["id"]], draws[r["id"]], holds[r["id"]], entries[r["id"]],
                     records[(r["owner"], r["idempotency_key"])]) for r in reservations]


def build(templates: list[Template], n: int, per_txn: int, run: str,
          first_seq: int) -> list[tuple[dict[str, list[tuple[Any, ...]]], list[int], list[int]]]:
    """N lines' rows, per transaction: {table: row tuples}, bucket ids and held deltas."""
    columns = column_names(templates[0])
    txns = []
    seq, prev = first_seq, "0" * 64
    for start in range(0, n, per_txn):
        rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
        deltas: dict[int, int] = defaultdict(int)
        for i in range(start, min(n, start + per_txn)):
            t = templates[i % len(templates)]
            old, rid = t.reservation["id"], "res_" + uuid.uuid4().hex
            key = f"{run}-{i}"
            rows["reservation"].append(_tuple(t.reservation, columns["reservation"],
                                              id=rid, idempotency_key=key))
            for line in t.lines:
                rows["reservation_line"].append(_tuple(line, columns["reservation_line"],
                                                       reservation_id=rid))
            for draw in t.draws:
                rows["line_draw"].append(_tuple(draw, columns["line_draw"], reservation_id=rid))
                deltas[draw["bucket_id"]] += draw["tpp"]
            for hold in t.holds:
                rows["active_hold"].append(_tuple(hold, columns["active_hold"],
                                                  reservation_id=rid))
            for entry in t.entries:
                digest = hashlib.sha256(f"{prev}{seq}{rid}".encode()).hexdigest()
                rows["entry"].append(_tuple(entry, columns["entry"], seq=seq, reservation_id=rid,
                                            idempotency_key=key, prev_hash=prev, hash=digest))
                seq, prev = seq + 1, digest
            outcome = json.loads(json.dumps(t.idempotency["outcome"]).replace(old, rid))
            rows["idempotency_record"].append(_tuple(t.idempotency, columns["idempotency_record"],
                                                     key=key, outcome=outcome))
        ids = sorted(deltas)
        txns.append((rows, ids, [deltas[i] for i in ids]))
    return txns


def column_names(t: Template) -> dict[str, tuple[str, ...]]:
    first = {"reservation": t.reservation, "reservation_line": t.lines[0],
             "line_draw": t.draws[0], "active_hold": t.holds[0], "entry": t.entries[0],
             "idempotency_record": t.idempotency}
    return {name: tuple(row) for name, row in first.items()}


def _tuple(row: dict[str, Any], columns: tuple[str, ...], **changes: Any) -> tuple[Any, ...]:
    return tuple(changes[c] if c in changes else row[c] for c in columns)


def _type_oids(conn: psycopg.Connection[Any], table: str, columns: tuple[str, ...]) -> list[int]:
    found = dict(conn.execute(
        "SELECT attname, atttypid::int FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        [table]).fetchall())
    return [found[c] for c in columns]


def copy_floor(admin_url: str, bench_url: str, base: str, vendor_key: str,
               lines: int = 20_000, per_txn: int = 1_000) -> FloorResult:
    """Measures the floor (see the module's docstring); drops its scratch database."""
    run = "floor" + uuid.uuid4().hex[:8]
    real_batch(base, vendor_key, run)
    templates = read_templates(bench_url, run)
    columns = column_names(templates[0])
    txns = build(templates, lines, per_txn, run + "x", first_seq=1)
    scratch = fresh_database(admin_url, "ledger_bench_floor")
    try:
        with psycopg.connect(_conninfo(bench_url)) as src:
            buckets = src.execute("SELECT id, kind, key, period, operator_id, country, "
                                  "committed, held FROM bucket").fetchall()
        with psycopg.connect(_conninfo(scratch)) as conn:
            conn.execute("SET synchronous_commit = on")
            with conn.cursor().copy("COPY bucket (id, kind, key, period, operator_id, "
                                    "country, committed, held) FROM STDIN") as copy:
                for b in buckets:
                    copy.write_row(b)
            conn.commit()
            oids = {t: _type_oids(conn, t, columns[t]) for t in TABLES}
            statements = {t: f'COPY "{t}" ({", ".join(chr(34) + c + chr(34) for c in columns[t])})'
                             " FROM STDIN (FORMAT BINARY)" for t in TABLES}
            rows = 0
            started = time.perf_counter()
            for txn_rows, ids, deltas in txns:
                with conn.cursor() as cur:
                    for table in TABLES:
                        with cur.copy(statements[table]) as copy:
                            copy.set_types(oids[table])
                            for row in txn_rows[table]:
                                copy.write_row(row)
                        rows += len(txn_rows[table])
                    cur.execute("UPDATE bucket SET held = bucket.held + d.dh "
                                "FROM unnest(%s::int[], %s::bigint[]) AS d(id, dh) "
                                "WHERE bucket.id = d.id", [ids, deltas])
                    last = txn_rows["entry"][-1]
                    cur.execute("UPDATE chain_head SET seq = %s, hash = %s WHERE id = 1",
                                [last[columns["entry"].index("seq")],
                                 last[columns["entry"].index("hash")]])
                conn.commit()
            took = time.perf_counter() - started
    finally:
        _drop(admin_url, "ledger_bench_floor")
    return FloorResult(lines, took, per_txn, rows)


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
