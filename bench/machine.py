"""A description of the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _version(cmd: list[str]) -> str:
    try:  # some tools (wrk) print their version and exit non-zero
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return (out.stdout or out.stderr).strip() or "unknown"


def describe() -> str:
    wrk = _version(["wrk", "--version"]).splitlines()
    return "\n".join([
        "Machine:",
        f"- CPU: {os.cpu_count()} cores, {_cpu_model()}",
        f"- memory: {_mem_gib():.0f} GiB",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}; {_version(['psql', '--version'])}; "
        f"{_version(['redis-server', '--version']).split(' sha=')[0]}; "
        f"{wrk[0] if wrk else 'wrk unknown'}",
    ])
