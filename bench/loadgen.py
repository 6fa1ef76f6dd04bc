"""Load generation with wrk (C, event-driven: it is not the bottleneck, and each run
reports its own CPU use so that claim is checked, not assumed)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).parent / "lua"


@dataclass
class LoadResult:
    name: str
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    loadgen_cpu: float  # the load generator's CPU seconds per wall second (1.0 = one core)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("the benchmark needs wrk: apt-get install -y wrk")
    return path


def run_wrk(
    name: str,
    url: str,
    script: str,
    env: dict[str, str],
    connections: int,
    seconds: int,
    threads: int = 1,
) -> LoadResult:
    """Runs wrk against `url` with a Lua script from bench/lua; parses its JSON line."""
    wrk = require_wrk()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
         "--timeout", "10s", "-s", str(LUA_DIR / script), url],
        env={**os.environ, **env, "BENCH_LUA_DIR": str(LUA_DIR)},
        capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("{"))
    doc = json.loads(line)
    return LoadResult(
        name=name,
        requests=doc["requests"],
        seconds=doc["duration_us"] / 1e6,
        non_2xx=doc["non_2xx"],
        socket_errors=doc["socket_errors"],
        p50_ms=doc["p50_us"] / 1000,
        p99_ms=doc["p99_us"] / 1000,
        loadgen_cpu=cpu / wall,
    )
