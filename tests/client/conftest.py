"""A live `ledger serve` (SQLite, jobs off, a free port) for the client's tests, keys
made with the `ledger keys create` CLI, and a flaky proxy that answers 503 / 429 on
cue before forwarding to it."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledger_client import LedgerClient

REPO = Path(__file__).resolve().parents[2]
LEDGER = str(Path(sys.executable).parent / "ledger")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    workdir: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update({
            "LEDGER_DATABASE_URL": f"sqlite:///{self.workdir / 'ledger.db'}",
            "LEDGER_JOBS_IN_SERVE": "false",
            "PYTHONPATH": str(REPO),
            **self.env_overrides,
        })
        return env

    def start(self) -> None:
        self.port = free_port()
        self.log = open(self.workdir / "serve.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [LEDGER, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.workdir, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ledger serve exited: {self.logs()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"ledger serve did not come up: {self.logs()}")

    def logs(self) -> str:
        return (self.workdir / "serve.log").read_text(errors="replace")

    def create_key(self, role: str, name: str, operator: str | None = None) -> str:
        args = [LEDGER, "keys", "create", "--role", role, "--name", name]
        if operator:
            args += ["--operator", operator]
        out = subprocess.run(args, cwd=self.workdir, env=self.env, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()


def start_server(workdir: Path, roles: tuple[str, ...] | None = None, **env: str) -> LiveServer:
    server = LiveServer(workdir, env)
    server.start()
    wanted = {
        "admin": ("admin", "ops", None),
        "vendor": ("vendor", "acme-chips", None),
        "vendor2": ("vendor", "other-chips", None),
        "operator": ("operator", "g42-noc", "g42"),
        "auditor": ("auditor", "bis-audit", None),
    }
    wanted = {k: v for k, v in wanted.items() if roles is None or k in roles}
    with ThreadPoolExecutor(len(wanted)) as pool:  # each CLI start costs seconds
        futures = {name: pool.submit(server.create_key, *args) for name, args in wanted.items()}
        server.keys = {name: f.result() for name, f in futures.items()}
    return server


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("live"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(live: LiveServer) -> Iterator[Any]:
    """A factory: client(role) -> LedgerClient on the live server."""
    made: list[LedgerClient] = []

    def make(role: str = "admin", **kwargs: Any) -> LedgerClient:
        c = LedgerClient(kwargs.pop("base_url", live.url), live.keys[role], **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@dataclass
class Parties:
    operator_id: str
    consignee_id: str


def seed_parties(admin: LedgerClient, operator_id: str = "g42") -> Parties:
    """An operator in the UAE (Tier 2) and a fresh consignee of it (its own LPP bucket)."""
    consignee_id = f"{operator_id}-site-{uuid.uuid4().hex[:8]}"
    admin.put_operator(operator_id, name=operator_id.upper(), hq_country="AE")
    admin.put_consignee(consignee_id, name="Site", country="AE", operator_id=operator_id)
    return Parties(operator_id, consignee_id)


# -- a proxy that misbehaves on cue ------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    idempotency_key: str | None
    answered: int


class FlakyProxy:
    """Forwards to `upstream`; `script` says what to do with the next requests, in order:
    ("fail", status, retry_after): answer that status without forwarding;
    ("lose", status, retry_after): forward, then answer that status instead (the
    answer was lost on the way back). Requests past the script are forwarded."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.script: list[tuple[str, int, str | None]] = []
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    step = proxy.script.pop(0) if proxy.script else None
                status, headers, content = 0, {}, b""
                if step is None or step[0] == "lose":
                    headers_out = {k: v for k, v in self.headers.items()
                                   if k.lower() not in ("host", "content-length", "connection")}
                    r = httpx.request(self.command, proxy.upstream + self.path,
                                      headers=headers_out, content=body, timeout=30)
                    status, content = r.status_code, r.content
                    headers = {k: v for k, v in r.headers.items()
                               if k.lower() in ("content-type", "retry-after")}
                if step is not None:
                    _, status, retry_after = step
                    content = (b'{"type":"https://tpp-ledger.dev/problems/unavailable",'
                               b'"title":"Service unavailable","status":%d,'
                               b'"detail":"the proxy says no"}' % status)
                    headers = {"Content-Type": "application/problem+json"}
                    if retry_after is not None:
                        headers["Retry-After"] = retry_after
                with proxy.lock:
                    proxy.seen.append(Seen(self.command, self.path,
                                           self.headers.get("Idempotency-Key"), status))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(live: LiveServer) -> Iterator[FlakyProxy]:
    p = FlakyProxy(live.url)
    try:
        yield p
    finally:
        p.close()
