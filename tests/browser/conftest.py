"""Browser tests of the dashboard: a real `ledger serve` process and Debian's Chromium,
driven by Playwright for Python.

No browser is ever downloaded (`playwright install` is never run): Playwright's driver
ships inside its wheel, and it launches the system Chromium by `executable_path`.
Without Chromium (or Playwright) these tests are skipped with the reason, except in
CI (CI=true), where that is a failure, as for PostgreSQL and Redis (tests/conftest.py).
A failing test leaves a screenshot of the page; the failure report names the file.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI

CHROMIUM = os.environ.get("LEDGER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
START_TIMEOUT = 60.0
SHOTS_DIR: Path | None = None


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what}; CI requires it for the browser tests", pytrace=False)
    pytest.skip(what)


def _ledger_command() -> str:
    found = shutil.which("ledger", path=str(Path(sys.executable).parent)) or shutil.which("ledger")
    if found is None:
        pytest.fail("the `ledger` command is not installed (pip install -e .)", pytrace=False)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    keys: dict[str, str]  # role -> key (operator: of OPERATOR_ID)
    command: str
    env: dict[str, str]

    def client(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0,
                            headers={"Authorization": f"Bearer {self.keys[role]}"})

    def create_key(self, role: str, name: str, *extra: str) -> str:
        done = subprocess.run([self.command, "keys", "create", "--role", role, "--name", name,
                               *extra], env=self.env, capture_output=True, text=True, check=True)
        return done.stdout.strip()


OPERATOR_ID = "g42"
COUNTRY = "AE"


@pytest.fixture(scope="package")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`ledger serve` on a free port over a fresh SQLite file, jobs off, keys from the CLI,
    reference data PUT over HTTP."""
    work = tmp_path_factory.mktemp("dashboard")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(LEDGER_DATABASE_URL=f"sqlite:///{work / 'ledger.db'}",
               LEDGER_JOBS_IN_SERVE="false")
    command = _ledger_command()
    server = LiveServer(url="", keys={}, command=command, env=env)
    port = _free_port()  # serve migrates the empty database itself
    log = (work / "serve.log").open("w")
    proc = subprocess.Popen([command, "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    server.url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (work / "serve.log").read_text()[-2000:]
                pytest.fail(f"`ledger serve` did not start:\n{tail}", pytrace=False)
            time.sleep(0.2)
        # Every key at once: each `ledger keys create` is a Python start-up.
        made = {role: subprocess.Popen(
            [command, "keys", "create", "--role", role, "--name", f"browser-{role}", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for role, extra in (("admin", []), ("vendor", []), ("auditor", []),
                                ("operator", ["--operator", OPERATOR_ID]))}
        for role, child in made.items():
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            server.keys[role] = out.strip()
        with server.client("admin") as admin:
            admin.put(f"/v1/operators/{OPERATOR_ID}",
                      json={"name": "G42", "hq_country": COUNTRY}).raise_for_status()
            for consignee in ("c-headroom", "c-denial", "c-list"):
                admin.put(f"/v1/consignees/{consignee}", json={
                    "name": f"G42 site {consignee}", "country": COUNTRY,
                    "operator_id": OPERATOR_ID}).raise_for_status()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# Package scope, not session: Playwright's sync API runs an event loop on the main thread
# while it is open, and asyncio tests collected after this package would find it running.
@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _missing(f"Playwright is not installed ({exc}); pip install -e '.[dev]'")
    if not Path(CHROMIUM).is_file():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser context (its own sessionStorage) on the dashboard. Script errors
    and Content-Security-Policy refusals on the page fail the test."""
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    tab.on("console", lambda msg: problems.append(f"console: {msg.text}")
           if "Content Security Policy" in msg.text else None)
    tab.goto("/")
    yield tab
    context.close()
    assert not problems, problems


def shots_dir() -> Path:
    global SHOTS_DIR
    if SHOTS_DIR is None:
        SHOTS_DIR = Path(tempfile.mkdtemp(prefix="dashboard-screenshots-"))
    return SHOTS_DIR


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failed browser test, saves a full-page screenshot and names it in the report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    tab = getattr(item, "funcargs", {}).get("page")
    if tab is None or tab.is_closed():
        return
    path = shots_dir() / f"{item.name}.png"
    try:
        tab.screenshot(path=str(path), full_page=True)
        note = f"screenshot of the page at the failure: {path}"
    except Exception as exc:
        note = f"no screenshot ({type(exc).__name__}: {exc})"
    report.sections.append(("dashboard", note))
