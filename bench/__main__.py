"""The benchmark harness: `python -m bench` (or `.venv/bin/python -m bench`).

Starts the real server (`ledger serve`: PostgreSQL with durable commits, Redis
on) and measures, in one run on this machine, every figure of issue 6 with its
ratio to the HTTP ceiling of the same app and server. Prints a table and
writes it to BENCHMARKS.md with the machine description. Timed assertions
never live in the test suite; they live here, as figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import LoadResult, require_wrk, run_wrk
from bench.machine import describe
from bench.seed import CONSIGNEES, LINE_TPP, fresh_database, preload, seed
from bench.server import Server

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    figure: str
    value: str
    ratio: str = ""
    target: str = ""
    met: str = ""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--seconds", type=int, default=15, help="per throughput scenario")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--big", type=int, default=1_000_000, help="entries for the growth run")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--signing-cost", action="store_true",
                        help="only: single-line and batch reservations with head signing off "
                        "and on (plus the witness file), alternating, in one run; prints the "
                        "ratio and writes nothing")
    parser.add_argument("--rounds", type=int, default=2, help="--signing-cost: off/on pairs")
    args = parser.parse_args()
    require_wrk()
    if args.signing_cost:
        return signing_cost(args)

    print("== preparing a fresh database", flush=True)
    url = fresh_database(args.postgres, "ledger_bench")
    db = seed(url)
    env = {
        "LEDGER_DATABASE_URL": url,
        "LEDGER_REDIS_URL": args.redis,
        "LEDGER_JOBS_IN_SERVE": "false",
        "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
    }
    subprocess.run(["redis-cli", "-u", args.redis, "FLUSHDB"], check=False,
                   capture_output=True)
    server = Server(env, port=8765, workers=args.workers)
    rows: list[Row] = []
    try:
        rows += throughput(server, db.admin_key, db.vendor_key, args.seconds)
        rows += growth(server, url, db.admin_key, db.vendor_key, args.big)
        rows.append(verify_speed(url))
        rss = server.peak_rss_mb()
        rows.append(Row("server peak RSS (after all runs)", f"{rss:.0f} MB", "",
                        "≤ 300 MB at 1M entries", _met(rss <= 300)))
    finally:
        server.stop()
    report = render(rows, describe(), args)
    print(report)
    Path(args.out).write_text(report)
    print(f"written to {args.out}")
    return 0


def signing_cost(args: argparse.Namespace) -> int:
    """Reservation throughput with signed heads off vs on, same database, same run.
    Rounds alternate off, on, off, on... so drift of the machine hits both alike."""
    import tempfile

    from ledger.heads import create_signing_key

    # One database per variant, seeded alike: entries written without the key after
    # signed ones would (rightly) make the signing server refuse to write.
    print("== preparing two fresh databases", flush=True)
    dbs = {variant: seed(fresh_database(args.postgres, f"ledger_bench_sign_{variant}"))
           for variant in ("off", "on")}
    tmp = Path(tempfile.mkdtemp(prefix="bench-signing-"))
    key = tmp / "signing.pem"
    create_signing_key(key)
    common_env = {"LEDGER_REDIS_URL": args.redis, "LEDGER_JOBS_IN_SERVE": "false",
                  "LEDGER_RATE_LIMIT_PER_MINUTE": "0"}
    base_env = {**common_env, "LEDGER_DATABASE_URL": dbs["off"].url}
    signed_env = {**common_env, "LEDGER_DATABASE_URL": dbs["on"].url,
                  "LEDGER_SIGNING_KEY_PATH": str(key),
                  "LEDGER_WITNESS_FILE": str(tmp / "witness.jsonl")}
    common = {"BENCH_CONSIGNEES": str(CONSIGNEES), "BENCH_LINE_TPP": str(LINE_TPP)}
    results: dict[str, dict[str, list[float]]] = {"off": {}, "on": {}}
    for round_no in range(args.rounds):
        for variant, env in (("off", base_env), ("on", signed_env)):
            subprocess.run(["redis-cli", "-u", args.redis, "FLUSHDB"], check=False,
                           capture_output=True)
            server = Server(env, port=8765, workers=args.workers)
            db = dbs[variant]
            try:
                run = f"s{round_no}{variant}{uuid.uuid4().hex[:6]}"
                print(f"== round {round_no + 1}, signing {variant}", flush=True)
                run_wrk("warmup", server.base, "reserve.lua",
                        {**common, "BENCH_KEY": db.vendor_key, "BENCH_RUN": run + "w"}, 64, 2)
                server.wait_idle()
                single = run_wrk("reserve", server.base, "reserve.lua",
                                 {**common, "BENCH_KEY": db.vendor_key, "BENCH_RUN": run},
                                 64, args.seconds)
                server.wait_idle()
                batch = run_wrk("batch", server.base, "batch.lua",
                                {**common, "BENCH_KEY": db.vendor_key, "BENCH_RUN": run + "b",
                                 "BENCH_BATCH": "100"}, 4, args.seconds)
                server.wait_idle()
            finally:
                server.stop()
            got = results[variant]
            got.setdefault("single", []).append(single.rate)
            got.setdefault("p99", []).append(single.p99_ms)
            got.setdefault("batch", []).append(batch.rate * 100)
            print(f"   single-line {single.rate:,.0f}/s (p99 {single.p99_ms:.1f} ms, non-2xx "
                  f"{single.non_2xx}); batch {batch.rate * 100:,.0f} lines/s (non-2xx "
                  f"{batch.non_2xx})", flush=True)
    witness_lines = (tmp / "witness.jsonl").read_bytes().count(b"\n")

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    print(f"\n| scenario ({args.seconds} s x {args.rounds} rounds each) | signing off | "
          "signing on + witness file | on / off |")
    print("| --- | --- | --- | --- |")
    for name, label, unit in (("single", "single-line reservations, 64 clients", "/s"),
                              ("batch", "batch reservations (100 lines), 4 clients",
                               " lines/s")):
        off, on = mean(results["off"][name]), mean(results["on"][name])
        print(f"| {label} | {off:,.0f}{unit} | {on:,.0f}{unit} | {on / off:.3f} |")
    print(f"| single-line p99 | {mean(results['off']['p99']):.1f} ms | "
          f"{mean(results['on']['p99']):.1f} ms | |")
    print(f"\nwitness file: {witness_lines:,} signed heads")
    return 0


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _load_row(r: LoadResult, ceiling: float | None) -> str:
    return (f"{r.rate:,.0f}/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms "
            f"(non-2xx {r.non_2xx}, wrk CPU {r.loadgen_cpu:.0%})")


def throughput(server: Server, admin: str, vendor: str, seconds: int) -> list[Row]:
    base = server.base
    run = uuid.uuid4().hex[:8]
    common = {"BENCH_CONSIGNEES": str(CONSIGNEES), "BENCH_LINE_TPP": str(LINE_TPP)}
    print("== HTTP ceiling: GET /health", flush=True)
    run_wrk("warmup", base + "/health", "get.lua", {"BENCH_KEY": admin}, 64, 2)
    ceiling = run_wrk("ceiling", base + "/health", "get.lua", {"BENCH_KEY": admin}, 64,
                      seconds)
    server.wait_idle()
    print("== headroom reads, 64 clients", flush=True)
    query = base + "/v1/headroom?country=SG&operator_id=bench-op&consignee_id=bench-c3"
    run_wrk("warmup", query, "get.lua", {"BENCH_KEY": admin}, 64, 2)  # pools, first answer
    server.wait_idle()
    headroom = run_wrk("headroom", query, "get.lua", {"BENCH_KEY": admin}, 64, seconds)
    server.wait_idle()
    print("== single-line reservations, 64 clients", flush=True)
    run_wrk("warmup", base, "reserve.lua",
            {**common, "BENCH_KEY": vendor, "BENCH_RUN": run + "w"}, 64, 2)
    server.wait_idle()
    cpu0 = server.cpu_seconds()
    reserve = run_wrk("reserve", base, "reserve.lua",
                      {**common, "BENCH_KEY": vendor, "BENCH_RUN": run}, 64, seconds)
    server_cpu = (server.cpu_seconds() - cpu0) / reserve.seconds
    server.wait_idle()
    print("== batch reservations, 1,000 per request, 4 clients", flush=True)
    batch = run_wrk("batch", base, "batch.lua",
                    {**common, "BENCH_KEY": vendor, "BENCH_RUN": run + "b",
                     "BENCH_BATCH": "1000"}, 4, seconds)
    server.wait_idle()
    c = ceiling.rate
    return [
        Row("HTTP ceiling (GET /health)", _load_row(ceiling, None), "1.00"),
        Row("single-line reservations, 64 clients", _load_row(reserve, c),
            f"{reserve.rate / c:.2f}", "≥ 0.5x ceiling, p99 ≤ 50 ms",
            _met(reserve.rate >= 0.5 * c and reserve.p99_ms <= 50 and reserve.non_2xx == 0)),
        Row("  server CPU during reservations", f"{server_cpu:.0%} of one core"),
        Row("batch reservations (1,000 lines per request)",
            f"{batch.rate * 1000:,.0f} lines/s (p50 {batch.p50_ms:.0f} ms per batch, "
            f"non-2xx {batch.non_2xx})", "", "≥ 25,000 lines/s",
            _met(batch.rate * 1000 >= 25_000 and batch.non_2xx == 0)),
        Row("headroom reads, 64 clients", _load_row(headroom, c), f"{headroom.rate / c:.2f}",
            "≥ 0.8x ceiling, p99 ≤ 10 ms",
            _met(headroom.rate >= 0.8 * c and headroom.p99_ms <= 10)),
    ]


def _latency_pair(server: Server, admin: str, vendor: str, tag: str) -> tuple[LoadResult, ...]:
    common = {"BENCH_CONSIGNEES": str(CONSIGNEES), "BENCH_LINE_TPP": str(LINE_TPP)}
    reserve = run_wrk(f"reserve@{tag}", server.base, "reserve.lua",
                      {**common, "BENCH_KEY": vendor, "BENCH_RUN": f"g{tag}"}, 1, 5)
    page = run_wrk(f"history@{tag}", server.base + "/v1/entries?consignee_id=bench-c7&limit=100",
                   "get.lua", {"BENCH_KEY": admin}, 1, 5)
    first = run_wrk(f"history-all@{tag}", server.base + "/v1/entries?limit=100",
                    "get.lua", {"BENCH_KEY": admin}, 1, 5)
    return reserve, page, first


def _entries(url: str) -> int:
    from ledger.store.engine import create_ledger_engine

    engine = create_ledger_engine(url)
    with engine.connect() as conn:
        n = int(conn.exec_driver_sql("SELECT seq FROM chain_head").scalar_one())
    engine.dispose()
    return n


def settle(url: str, checkpoint: bool = True) -> None:
    """After a bulk load, let PostgreSQL finish its own upkeep (statistics, dirty
    pages) so both sizes are measured in the same steady state, not in the
    aftermath of the load."""
    from ledger.store.engine import create_ledger_engine

    engine = create_ledger_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
        if checkpoint:
            conn.exec_driver_sql("CHECKPOINT")
    engine.dispose()


def growth(server: Server, url: str, admin: str, vendor: str, big: int) -> list[Row]:
    have = _entries(url)
    small = 10_000
    if have < small:
        preload(url, small - have, start=10_000_000)
    settle(url)
    print(f"== latency at {_entries(url):,} entries", flush=True)
    server.wait_idle()
    at_small = _latency_pair(server, admin, vendor, "10k")
    have = _entries(url)
    print(f"== preloading to {big:,} entries", flush=True)
    # In steps, with ANALYZE between them, as autovacuum would do on a production
    # server (it is off on this machine's PostgreSQL): statistics left stale after
    # a 50-fold growth can lead the planner to poor plans.
    took, start, left = 0.0, 20_000_000, max(0, big - have)
    while left > 0:
        step = min(left, 100_000)
        took += preload(url, step, start=start)
        start, left = start + step, left - step
        settle(url, checkpoint=False)
    print(f"   preload took {took:.0f} s", flush=True)
    settle(url)
    print(f"== latency at {_entries(url):,} entries", flush=True)
    server.wait_idle()
    at_big = _latency_pair(server, admin, vendor, "1M")
    rows = []
    names = ("reservation latency (1 client)", "history page, filtered (1 client)",
             "history page, unfiltered (1 client)")
    for name, s, b in zip(names, at_small, at_big, strict=True):
        ratio = b.p50_ms / s.p50_ms
        rows.append(Row(name, f"p50 {s.p50_ms:.2f} ms at 10k → {b.p50_ms:.2f} ms at "
                              f"{big // 1000:,}k (p99 {s.p99_ms:.1f} → {b.p99_ms:.1f})",
                        f"{ratio:.2f}x growth", "≤ 1.2x", _met(ratio <= 1.2)))
    return rows


def verify_speed(url: str) -> Row:
    n = _entries(url)
    print(f"== ledger verify over {n:,} entries", flush=True)
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "ledger"), "verify"],
                   env={"LEDGER_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}, check=True,
                   capture_output=True)
    took = time.perf_counter() - started
    rate = n / took
    return Row("ledger verify", f"{rate:,.0f} entries/s ({n:,} in {took:.1f} s)", "",
               "≥ 100,000 entries/s", _met(rate >= 100_000))


def render(rows: list[Row], machine: str, args: argparse.Namespace) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Produced by `.venv/bin/python -m bench` (bench/__main__.py); one run, one machine.",
        f"Server: `ledger serve --workers {args.workers}` on PostgreSQL (durable commits) with "
        "Redis; load from wrk on the same machine.",
        "",
        machine,
        "",
        "| figure | measured | ratio | target | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r.figure} | {r.value} | {r.ratio} | {r.target} | {r.met} |" for r in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
