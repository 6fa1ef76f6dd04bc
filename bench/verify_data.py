"""A large, valid hash chain for `ledger verify` figures, written straight into a
freshly migrated PostgreSQL database (the service path is far too slow for 1M entries).

`python -m bench.verify_data [--entries 1000000] [--admin-url URL] [--name DB]`

The entries look like the service's own (holds, commits, releases, expiries and the
odd reversal; draws as stored by SQLAlchemy's JSON type; microsecond times; mostly
NULL notes, some NULL idempotency keys; a few notes with quotes, a backslash or
non-ASCII text), and each hash is `ledger.chain.entry_hash` of its fields: the chain
is exactly what the service would have written. Rows go in with COPY; chain_head is
set to the last entry. Nothing else (buckets, reservations, signed heads) is filled:
`ledger verify` only walks entries.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.seed import fresh_database
from ledger.chain import ENCODING_VERSION, GENESIS_HASH, entry_hash

DEFAULT_NAME = "ledger_bench_verify"
COLUMNS = ("seq", "kind", "reservation_id", "line_no", "country", "operator_id",
           "consignee_id", "path", "tpp", "draws", "effective_at", "recorded_at", "actor",
           "idempotency_key", "rule_set", "rule_set_version", "note", "encoding",
           "prev_hash", "hash")
COUNTRIES = ("SG", "MY", "AE", "IN", "BR", "DE")
ODD_NOTES = ('reversed: "duplicate order"', "manual fix \\ see ticket 42",
             "Prüfung nach §7 — ok", "line\tbreak\nnote")


def entries(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """`n` entries with a valid chain, seq 1..n, in order."""
    rng = random.Random(seed)
    at = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    prev = GENESIS_HASH
    open_holds: list[tuple[str, int, dict[str, Any]]] = []
    for seq in range(1, n + 1):
        at += timedelta(microseconds=rng.randint(50, 40_000))
        if open_holds and rng.random() < 0.45:
            res, line_no, base = open_holds.pop(rng.randrange(len(open_holds)))
            kind = rng.choices(("commit", "release", "expire", "reversal"), (70, 20, 9, 1))[0]
            fields = dict(base, kind=kind, line_no=line_no)
            note = rng.choice(ODD_NOTES) if kind == "reversal" else None
            fields["note"] = note
            fields["idempotency_key"] = None if kind == "expire" else f"idem-{seq}"
            fields["actor"] = "system:expiry" if kind == "expire" else base["actor"]
        else:
            country = rng.choice(COUNTRIES)
            op = f"op-{rng.randrange(40)}"
            cons = f"{country.lower()}-lab-{rng.randrange(500)}"
            tpp = rng.choice((100, 1_000, 25_000, 1_200_000, rng.randrange(1, 10**7)))
            path = rng.choice(("lpp", "uveu", "license", "tier1"))
            draws = [["footprint", f"{op}:{country}", "all", tpp],
                     ["lpp", f"consignee:{cons}", "2026", tpp]]
            if path == "uveu":
                draws.append(["uveu_country", f"{op}:{country}", "2026", tpp])
            res = f"res_{rng.getrandbits(128):032x}"
            fields = {"kind": "hold", "reservation_id": res, "line_no": rng.randrange(3),
                      "country": country, "operator_id": op, "consignee_id": cons,
                      "path": path, "tpp": tpp, "draws": draws, "actor": f"key_{op}",
                      "idempotency_key": f"idem-{seq}" if rng.random() < 0.8 else None,
                      "rule_set": "ai-diffusion-2025", "rule_set_version": "2026-12-01.1",
                      "note": None}
            if rng.random() < 0.001:
                fields["note"] = rng.choice(ODD_NOTES)
            open_holds.append((res, fields["line_no"], fields))
            if len(open_holds) > 5000:
                open_holds.pop(0)
        # Some times land on whole seconds / trailing zeros, as real clocks do.
        effective = at.replace(microsecond=0) if rng.random() < 0.01 else at
        fields = dict(fields, seq=seq, effective_at=effective, recorded_at=at,
                      encoding=ENCODING_VERSION)
        fields["prev_hash"] = prev
        fields["hash"] = prev = entry_hash(prev, fields)
        yield fields


def load(url: str, n: int, batch: int = 50_000) -> str:
    """COPYs `n` entries into the (fresh, migrated) database at `url`; returns the head."""
    import psycopg
    import sqlalchemy as sa

    conninfo = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    head = GENESIS_HASH
    with psycopg.connect(conninfo) as conn:
        rows = entries(n)
        done = 0
        while done < n:
            with conn.transaction(), conn.cursor() as cur, cur.copy(
                f"COPY entry ({', '.join(COLUMNS)}) FROM STDIN"
            ) as copy:
                for fields in rows:
                    row = [fields[c] for c in COLUMNS]
                    row[9] = json.dumps(fields["draws"])  # as SQLAlchemy's JSON type stores it
                    row[10] = fields["effective_at"].replace(tzinfo=None)
                    row[11] = fields["recorded_at"].replace(tzinfo=None)
                    copy.write_row(row)
                    head = fields["hash"]
                    done += 1
                    if done % batch == 0:
                        break
            print(f"  {done:,} entries", flush=True)
        conn.execute("UPDATE chain_head SET seq = %s, hash = %s WHERE id = 1", (n, head))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE entry")
    return head


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--name", default=DEFAULT_NAME)
    args = p.parse_args(argv)
    started = time.perf_counter()
    url = fresh_database(args.admin_url, args.name)
    head = load(url, args.entries)
    print(f"{args.entries:,} entries in {args.name}, head {head}, "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
