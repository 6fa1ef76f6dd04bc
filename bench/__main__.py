"""The benchmark harness: `python -m bench` (or `.venv/bin/python -m bench`).

Starts the real server (`ledger serve`: PostgreSQL with durable commits, Redis
on) and measures, in one run on this machine, every figure of issue 14 with its
ratio to references measured in the same run: the HTTP ceiling of the same app
and server (GET /health) and, for batches, the COPY floor of the same
PostgreSQL (bench/copy_floor.py). Prints a table and, for a full run, writes it
to BENCHMARKS.md with the machine description. `--only a,b` runs a subset (and
writes a file only with --out). Timed assertions never live in the test suite;
they live here, as figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.copy_floor import copy_floor
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


SCENARIOS = ("ceiling", "headroom", "reserve", "reserve1", "batch", "floor", "growth",
             "verify", "rss")
# A ratio needs its reference measured in the same run: these come along.
NEEDS = {"headroom": ("ceiling",), "reserve": ("ceiling",), "batch": ("floor",)}


def chosen(only: str | None) -> list[str]:
    """The scenarios of `--only` (all when None) plus those their ratios need, in run order."""
    if only is None:
        return list(SCENARIOS)
    asked = {x.strip() for x in only.split(",") if x.strip()}
    unknown = asked - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"--only: unknown scenario(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(SCENARIOS)}")
    for name in list(asked):
        asked |= set(NEEDS.get(name, ()))
    return [s for s in SCENARIOS if s in asked]


def server_name() -> str:
    return os.environ.get("LEDGER_SERVER") or "uvicorn"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--seconds", type=int, default=15, help="per throughput scenario")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--big", type=int, default=1_000_000, help="entries for the growth run")
    parser.add_argument("--only", default=None,
                        help="comma list of scenarios to run: " + ", ".join(SCENARIOS)
                        + " (headroom and reserve bring ceiling, batch brings floor); "
                        "prints the table and writes no file unless --out is given")
    parser.add_argument("--out", default=None,
                        help="where to write the table (default: BENCHMARKS.md, full runs only)")
    parser.add_argument("--floor-lines", type=int, default=20_000,
                        help="lines COPYed for the COPY floor")
    parser.add_argument("--repeats", type=int, default=5,
                        help="growth: repetitions of each latency at each size")
    parser.add_argument("--signing-cost", action="store_true",
                        help="only: single-line and batch reservations with head signing off "
                        "and on (plus the witness file), alternating, in one run; prints the "
                        "ratio and writes nothing")
    parser.add_argument("--rounds", type=int, default=2, help="--signing-cost: off/on pairs")
    args = parser.parse_args()
    require_wrk()
    if args.signing_cost:
        return signing_cost(args)
    scenarios = chosen(args.only)
    out = args.out if args.out is not None else (
        str(ROOT / "BENCHMARKS.md") if args.only is None else None)

    print(f"== preparing a fresh database (scenarios: {', '.join(scenarios)})", flush=True)
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
        rows += throughput(server, db.admin_key, db.vendor_key, args.seconds, scenarios,
                           args.postgres, url, args.floor_lines)
        if "growth" in scenarios:
            rows += growth(server, url, db.admin_key, db.vendor_key, args.big, args.repeats)
        if "verify" in scenarios:
            rows.append(verify_speed(url))
        if "rss" in scenarios:
            rss = server.peak_rss_mb()
            at = _entries(url)
            rows.append(Row("server peak RSS (after all runs)",
                            f"{rss:.0f} MB ({at:,} entries in the ledger)", "",
                            "≤ 300 MB at 1M entries", _met(rss <= 300)))
    finally:
        server.stop()
    report = render(rows, describe(), args, scenarios)
    print(report)
    if out is not None:
        Path(out).write_text(report)
        print(f"written to {out}")
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


def _load_row(r: LoadResult) -> str:
    return (f"{r.rate:,.0f}/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms "
            f"(non-2xx {r.non_2xx}, wrk CPU {r.loadgen_cpu:.0%})")


def throughput(server: Server, admin: str, vendor: str, seconds: int, scenarios: list[str],
               admin_url: str, url: str, floor_lines: int) -> list[Row]:
    base = server.base
    run = uuid.uuid4().hex[:8]
    common = {"BENCH_CONSIGNEES": str(CONSIGNEES), "BENCH_LINE_TPP": str(LINE_TPP)}
    rows: list[Row] = []
    c: float | None = None
    if "ceiling" in scenarios:
        print("== HTTP ceiling: GET /health, 64 clients", flush=True)
        run_wrk("warmup", base + "/health", "get.lua", {"BENCH_KEY": admin}, 64, 2)
        ceiling = run_wrk("ceiling", base + "/health", "get.lua", {"BENCH_KEY": admin}, 64,
                          seconds)
        server.wait_idle()
        c = ceiling.rate
        rows.append(Row("HTTP ceiling (GET /health, 64 clients)", _load_row(ceiling), "1.00"))
    if "headroom" in scenarios:
        assert c is not None
        print("== headroom reads, 64 clients", flush=True)
        query = base + "/v1/headroom?country=SG&operator_id=bench-op&consignee_id=bench-c3"
        run_wrk("warmup", query, "get.lua", {"BENCH_KEY": admin}, 64, 2)  # pools, first answer
        server.wait_idle()
        headroom = run_wrk("headroom", query, "get.lua", {"BENCH_KEY": admin}, 64, seconds)
        server.wait_idle()
        rows.append(Row("headroom reads, 64 clients", _load_row(headroom),
                        f"{headroom.rate / c:.2f}", "≥ 0.8x ceiling",
                        _met(headroom.rate >= 0.8 * c and headroom.non_2xx == 0)))
    if "reserve" in scenarios:
        assert c is not None
        print("== single-line reservations, 64 clients", flush=True)
        run_wrk("warmup", base, "reserve.lua",
                {**common, "BENCH_KEY": vendor, "BENCH_RUN": run + "w"}, 64, 2)
        server.wait_idle()
        cpu0 = server.cpu_seconds()
        reserve = run_wrk("reserve", base, "reserve.lua",
                          {**common, "BENCH_KEY": vendor, "BENCH_RUN": run}, 64, seconds)
        server_cpu = (server.cpu_seconds() - cpu0) / reserve.seconds
        server.wait_idle()
        ok = (reserve.rate >= 0.5 * c and reserve.rate >= 2_500 and reserve.p99_ms <= 100
              and reserve.non_2xx == 0)
        rows.append(Row("single-line reservations, 64 clients", _load_row(reserve),
                        f"{reserve.rate / c:.2f}",
                        "≥ 0.5x ceiling, ≥ 2,500/s, p99 ≤ 100 ms", _met(ok)))
        rows.append(Row("  server CPU during reservations", f"{server_cpu:.0%} of one core"))
    if "reserve1" in scenarios:
        print("== single-line reservation, 1 client", flush=True)
        run_wrk("warmup", base, "reserve.lua",
                {**common, "BENCH_KEY": vendor, "BENCH_RUN": run + "1w"}, 1, 2)
        server.wait_idle()
        one = run_wrk("reserve1", base, "reserve.lua",
                      {**common, "BENCH_KEY": vendor, "BENCH_RUN": run + "1"}, 1,
                      max(seconds, 10))
        server.wait_idle()
        rows.append(Row("single-line reservation (1 client)", _load_row(one), "",
                        "p50 ≤ 5 ms, p99 ≤ 15 ms",
                        _met(one.p50_ms <= 5 and one.p99_ms <= 15 and one.non_2xx == 0)))
    batch_rate: float | None = None
    if "batch" in scenarios:
        print("== batch reservations, 1,000 per request, 4 clients", flush=True)
        batch = run_wrk("batch", base, "batch.lua",
                        {**common, "BENCH_KEY": vendor, "BENCH_RUN": run + "b",
                         "BENCH_BATCH": "1000"}, 4, seconds)
        server.wait_idle()
        batch_rate = batch.rate * 1000
        batch_row = Row("batch reservations (1,000 lines per request, 4 clients)",
                        f"{batch_rate:,.0f} lines/s (p50 {batch.p50_ms:.0f} ms per batch, "
                        f"non-2xx {batch.non_2xx}, socket errors {batch.socket_errors})", "",
                        "≥ 10,000 lines/s, ≥ 0.5x COPY floor")
        rows.append(batch_row)
    if "floor" in scenarios:
        print(f"== COPY floor: {floor_lines:,} lines' rows by COPY, 1,000 lines per commit",
              flush=True)
        floor = copy_floor(admin_url, url, base, vendor, lines=floor_lines)
        server.wait_idle()
        rows.append(Row("  COPY floor (same rows, binary COPY, 1,000 lines per commit)",
                        f"{floor.rate:,.0f} lines/s ({floor.lines:,} lines, {floor.rows:,} rows "
                        f"in {floor.seconds:.1f} s)", "1.00"))
        if batch_rate is not None:
            ratio = batch_rate / floor.rate
            batch_row.ratio = f"{ratio:.2f} of floor"
            batch_row.met = _met(batch_rate >= 10_000 and ratio >= 0.5 and batch.non_2xx == 0
                                 and batch.socket_errors == 0)
    elif batch_rate is not None:
        batch_row.met = _met(batch_rate >= 10_000 and batch.non_2xx == 0
                             and batch.socket_errors == 0) + " (no floor)"
    return rows


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


LATENCIES = (
    ("reservation latency (1 client)", "reserve"),
    ("history page, filtered (1 client)", "/v1/entries?consignee_id=bench-c7&limit=100"),
    ("history page, unfiltered (1 client)", "/v1/entries?limit=100"),
)


def _latencies(server: Server, admin: str, vendor: str, tag: str, repeats: int,
               seconds: int = 3) -> list[list[LoadResult]]:
    """Each growth latency, `repeats` runs of `seconds` each, interleaved so drift of the
    machine hits all three alike; per latency, the runs."""
    common = {"BENCH_CONSIGNEES": str(CONSIGNEES), "BENCH_LINE_TPP": str(LINE_TPP)}
    out: list[list[LoadResult]] = [[] for _ in LATENCIES]
    run_wrk(f"warmup@{tag}", server.base, "reserve.lua",
            {**common, "BENCH_KEY": vendor, "BENCH_RUN": f"g{tag}w"}, 1, 1)
    for rep in range(repeats):
        for i, (_, what) in enumerate(LATENCIES):
            if what == "reserve":
                r = run_wrk(f"reserve@{tag}", server.base, "reserve.lua",
                            {**common, "BENCH_KEY": vendor, "BENCH_RUN": f"g{tag}r{rep}"},
                            1, seconds)
            else:
                r = run_wrk(f"history@{tag}", server.base + what, "get.lua",
                            {"BENCH_KEY": admin}, 1, seconds)
            out[i].append(r)
        server.wait_idle()
    return out


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


def growth(server: Server, url: str, admin: str, vendor: str, big: int,
           repeats: int) -> list[Row]:
    have = _entries(url)
    small = 10_000
    if have < small:
        preload(url, small - have, start=10_000_000)
    settle(url)
    n_small = _entries(url)
    print(f"== latency at {n_small:,} entries ({repeats} x 3 s each)", flush=True)
    server.wait_idle()
    at_small = _latencies(server, admin, vendor, "small", repeats)
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
    n_big = _entries(url)
    print(f"== latency at {n_big:,} entries ({repeats} x 3 s each)", flush=True)
    server.wait_idle()
    at_big = _latencies(server, admin, vendor, "big", repeats)
    rows = []
    for (name, _), s, b in zip(LATENCIES, at_small, at_big, strict=True):
        s50, b50 = _median([r.p50_ms for r in s]), _median([r.p50_ms for r in b])
        s99, b99 = _median([r.p99_ms for r in s]), _median([r.p99_ms for r in b])
        ratio = b50 / s50
        errors = sum(r.non_2xx for r in s + b)
        rows.append(Row(name, f"median p50 {s50:.2f} ms at {_k(n_small)} → {b50:.2f} ms at "
                              f"{_k(n_big)} (p50s {_spread(s)} → {_spread(b)}; median p99 "
                              f"{s99:.1f} → {b99:.1f} ms; non-2xx {errors})",
                        f"{ratio:.2f}x growth", "≤ 1.2x", _met(ratio <= 1.2 and errors == 0)))
    return rows


def _k(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1_000_000 else f"{n / 1000:,.0f}k"


def _spread(runs: list[LoadResult]) -> str:
    return "/".join(f"{r.p50_ms:.2f}" for r in runs)


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


def render(rows: list[Row], machine: str, args: argparse.Namespace,
           scenarios: list[str]) -> str:
    workers = f"{args.workers} worker" + ("s" if args.workers != 1 else "")
    lines = [
        "# Benchmarks",
        "",
        "Produced by `.venv/bin/python -m bench` (bench/__main__.py); one run, one machine"
        + ("" if args.only is None else f", scenarios {', '.join(scenarios)} only") + ".",
        f"Server: `ledger serve --workers {args.workers}` ({server_name()}, {workers}) on "
        "PostgreSQL (durable commits) with Redis; load from wrk on the same machine. "
        "Ratios are to figures of the same run: the HTTP ceiling (GET /health) and the "
        "COPY floor (bench/copy_floor.py).",
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
