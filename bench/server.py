"""The real server under test, started as `ledger serve` in its own process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


class Server:
    def __init__(self, env: dict[str, str], port: int, workers: int = 1) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        ledger_bin = Path(sys.executable).parent / "ledger"
        # The server's log goes to a file: a pipe nobody reads fills up (64 KiB) after a
        # few hundred access-log lines and then blocks the server mid-run.
        self.log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log",  # noqa: SIM115
                                               delete=False)
        self.proc = subprocess.Popen(
            [str(ledger_bin), "serve", "--port", str(port), "--workers", str(workers)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = Path(self.log.name).read_text(errors="replace")
                raise RuntimeError(f"server exited: {err[-2000:]}")
            try:
                if httpx.get(self.base + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def pids(self) -> list[int]:
        """The server process and its workers."""
        out = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        if children.exists():
            out += [int(p) for p in children.read_text().split()]
        return out

    def peak_rss_mb(self) -> float:
        """Peak resident memory (VmHWM) summed over the server's processes."""
        total_kb = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total_kb += int(line.split()[1])
            except FileNotFoundError:
                continue
        return total_kb / 1024

    def cpu_seconds(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    def wait_idle(self, timeout: float = 120) -> None:
        """Waits until the server has finished the work wrk left in flight (its CPU
        use drops near zero), so one scenario never measures the tail of another."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(0.5)
            if self.cpu_seconds() - before < 0.05:
                return

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
