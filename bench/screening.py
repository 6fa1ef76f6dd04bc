"""Reservation latency with a restricted-party list loaded (issue 12):
`python -m bench.screening [--entries 30000] [--n 2000] [--postgres URL]`.

Two fresh databases, identical except that one has a generated, FICTIONAL list of
`--entries` entries imported (names, aliases, addresses and officers made up from
syllables; no real party) and a few hundred parties, some of them matching it. The
same reservation (one line to a clean consignee, ai-diffusion-2025, Tier 1, so no
cap is involved and the books never fill) is made `--n` times on each, alternating
between the two so that drift affects both alike, through `Ledger.reserve` (the
service path, screening included: one indexed lookup of the line's two parties'
stored match state). Prints p50/p99 per database and the ratio (target <= 1.1).
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.clock import SystemClock
from ledger.policy.ruleset import load_rule_set
from ledger.reference import ConsigneeInput, Identity, OperatorInput
from ledger.screening.imports import import_list
from ledger.screening.lists import KEPT
from ledger.screening.screen import MATCH
from ledger.service import Ledger
from ledger.store.engine import create_ledger_engine
from ledger.store.migrate import upgrade
from ledger.views import LineInput, ReserveCommand

SYLLABLES = ("ka", "lo", "mi", "zen", "tor", "vex", "qua", "rin", "sol", "dra", "fen", "pol",
             "nix", "bar", "tel", "gor", "hup", "yel", "wim", "jor")
FORMS = ("Co., Ltd.", "Inc.", "LLC", "GmbH", "Pte. Ltd.", "S.A.", "Limited", "Corp.")
WORDS = ("Computing", "Systems", "Microelectronics", "Trading", "Photonics", "Data",
         "Semiconductor", "Research Institute", "Logistics", "Technology")


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def fictional_list(entries: int, seed: int = 7) -> bytes:
    """A CSV in the Consolidated Screening List layout, every name made up."""
    rng = random.Random(seed)
    out = io.StringIO()
    columns = list(KEPT)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for i in range(entries):
        name = f"{_word(rng)} {rng.choice(WORDS)} {i} {rng.choice(FORMS)}"
        row = dict.fromkeys(columns, "")
        row.update(
            source="Entity List (EL) - Bureau of Industry and Security (FICTIONAL BENCH)",
            entity_number=f"BX-{i:06d}", type="Entity", name=name,
            alt_names=";".join(f"{_word(rng)} {rng.choice(WORDS)}" for _ in range(2)),
            addresses=f"No. {rng.randint(1, 999)} {_word(rng)} Rd., Bldg {rng.randint(1, 20)}, "
                      f"{_word(rng)} City, XX",
            officers=";".join(f"{_word(rng)} {_word(rng)}" for _ in range(2)),
            start_date="2025-01-01", remarks="FICTIONAL benchmark entry")
        writer.writerow([row[c] for c in columns])
    return out.getvalue().encode()


def _books(url: str, list_csv: bytes | None, parties: int) -> Ledger:
    engine = create_ledger_engine(url)
    upgrade(engine)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"), SystemClock())
    ledger.put_operator(OperatorInput("op1", "Bench Operator", "US"))
    ledger.put_consignee(ConsigneeInput("clean", "Clean Compute GmbH", "DE", "op1",
                                        identity=Identity("1 Bench Street", ("A Person",))))
    rng = random.Random(11)
    names = []
    if list_csv is not None:
        reader = csv.DictReader(io.StringIO(list_csv.decode()))
        names = [r["name"] for r in reader][:parties // 4]
    for i in range(parties):  # a quarter of them named like a listed entry
        name = names[i] if i < len(names) else f"{_word(rng)} Party {i} Ltd."
        ledger.put_consignee(ConsigneeInput(f"p{i}", name, "DE", "op1"))
    if list_csv is not None:
        result = import_list(engine, list_csv, "bench", "bench", ledger.clock.now())
        print(f"  imported {result.entries:,} entries; rescreened {result.parties} parties: "
              f"{result.matches} matches")
    return ledger


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=30_000)
    parser.add_argument("--n", type=int, default=2000, help="reservations per database")
    parser.add_argument("--parties", type=int, default=400)
    parser.add_argument("--postgres", metavar="URL",
                        help="two databases <URL>_empty and <URL>_listed instead of SQLite")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-screening-"))
    if args.postgres:
        base = args.postgres.rstrip("/")
        admin = create_ledger_engine(base).execution_options(isolation_level="AUTOCOMMIT")
        urls = {}
        with admin.connect() as conn:
            for which in ("empty", "listed"):
                db = f"bench_screening_{which}"
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")
                conn.exec_driver_sql(f"CREATE DATABASE {db}")
                urls[which] = base.rsplit("/", 1)[0] + "/" + db
    else:
        urls = {w: f"sqlite:///{tmp / w}.db" for w in ("empty", "listed")}
    t0 = time.perf_counter()
    listed_csv = fictional_list(args.entries)
    print(f"generated {args.entries:,} fictional entries ({len(listed_csv) / 1e6:.1f} MB) "
          f"in {time.perf_counter() - t0:.1f} s")
    print("empty list:")
    empty = _books(urls["empty"], None, args.parties)
    print("listed:")
    t0 = time.perf_counter()
    listed = _books(urls["listed"], listed_csv, args.parties)
    print(f"  setup with import took {time.perf_counter() - t0:.1f} s")
    with Session(listed.engine) as session:
        stored = session.execute(sa.select(sa.func.count()).select_from(MATCH)).scalar_one()
    print(f"  stored matches: {stored}")
    cmd = ReserveCommand("bench", (LineInput("DE", "op1", "clean", "H100-SXM", 1, None, None),),
                         60, None)
    samples: dict[str, list[float]] = {"empty": [], "listed": []}
    for i in range(args.n + 200):
        for which, ledger in (("empty", empty), ("listed", listed)) if i % 2 else \
                (("listed", listed), ("empty", empty)):
            start = time.perf_counter()
            out = ledger.reserve(cmd)
            elapsed = time.perf_counter() - start
            assert out.held, out.violations
            if i >= 200:  # warm-up
                samples[which].append(elapsed)
    figures = {w: (statistics.median(s) * 1e3, _percentile(s, 0.99) * 1e3)
               for w, s in samples.items()}
    print(f"\nLedger.reserve, {args.n} each ({'PostgreSQL' if args.postgres else 'SQLite'}):")
    print("| list | p50 ms | p99 ms |")
    print("| --- | --- | --- |")
    for which, (p50, p99) in figures.items():
        label = "empty" if which == "empty" else f"{args.entries:,} entries"
        print(f"| {label} | {p50:.3f} | {p99:.3f} |")
    ratio50 = figures["listed"][0] / figures["empty"][0]
    ratio99 = figures["listed"][1] / figures["empty"][1]
    print(f"ratio listed/empty: p50 {ratio50:.3f}x, p99 {ratio99:.3f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
