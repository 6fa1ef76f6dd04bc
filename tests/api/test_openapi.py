"""The served OpenAPI document equals the checked-in copy, and schemathesis finds no
5xx and no response that breaks the document.

Regenerate the copy after a deliberate contract change:

    .venv/bin/python -m api.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ledger.keys import create_key
from ledger.store.engine import create_ledger_engine
from tests.api.conftest import Api
from tests.conftest import START

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "docs" / "openapi.json"
MAX_EXAMPLES = int(os.environ.get("LEDGER_SCHEMATHESIS_EXAMPLES", "25"))
CASES: list[str] = []


def test_served_spec_matches_checked_in_copy(sqlite_api: Api) -> None:
    served = sqlite_api.get("/schema/openapi.json", role=None).json()
    assert served == json.loads(CHECKED_IN.read_text()), (
        "the API contract changed: if deliberate, run "
        "`.venv/bin/python -m api.openapi > docs/openapi.json`"
    )
    assert sqlite_api.get("/schema", role=None).status_code == 200  # the docs UI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory,
                sqlite_template: Path) -> Iterator[tuple[str, str]]:
    """A real `uvicorn` process on a SQLite copy, seeded so reservations can succeed."""
    db = tmp_path_factory.mktemp("st") / "ledger.db"
    shutil.copy(sqlite_template, db)
    url = f"sqlite:///{db}"
    engine = create_ledger_engine(url)
    admin = create_key(engine, "admin", "schemathesis", START)
    engine.dispose()
    port = _free_port()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_JOBS_IN_SERVE": "false",
           "LEDGER_RATE_LIMIT_PER_MINUTE": "0"}
    env.pop("LEDGER_REDIS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
         "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        auth = {"Authorization": f"Bearer {admin}"}
        httpx.put(f"{base}/v1/operators/op1", headers=auth,
                  json={"name": "op1", "hq_country": "US"}).raise_for_status()
        httpx.put(f"{base}/v1/consignees/ae-1", headers=auth,
                  json={"name": "ae-1", "country": "AE", "operator_id": "op1"}
                  ).raise_for_status()
        yield base, admin
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"\nschemathesis: {len(CASES)} cases against the served spec")


@pytest.fixture(scope="module")
def api_schema(live_server: tuple[str, str]) -> Any:
    base, _ = live_server
    return schemathesis.openapi.from_url(f"{base}/schema/openapi.json")


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the checked-in document (known at collection)."""
    doc = json.loads(CHECKED_IN.read_text())
    return [(m.upper(), p) for p, item in sorted(doc["paths"].items()) for m in sorted(item)
            if m in ("get", "put", "post", "delete", "patch")]


# One test per operation, each a bounded Hypothesis run of schemathesis-generated cases.
# (schemathesis.pytest.from_fixture needs a pytest attribute pytest 9 removed.)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), _operations(),
                         ids=[f"{m} {p}" for m, p in _operations()])
def test_schemathesis(method: str, path: str, mode: GenerationMode, api_schema: Any,
                      live_server: tuple[str, str]) -> None:
    base, admin = live_server
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        CASES.append(operation.label)
        case.call_and_validate(
            base_url=base,
            headers={"Authorization": f"Bearer {admin}",
                     "Idempotency-Key": f"st-{len(CASES)}"},
            checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                    response_schema_conformance],
        )

    run()
