"""deploy/Dockerfile, checked without a container engine: the wheel its build
stage makes from the files it copies carries every data file the service reads
(rule sets, chips.toml, migrations, the dashboard's static files), and the
image runs as a numeric non-root user with a health check on /health."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split by FROM."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            found.append([])
        found[-1].append(line)
    return found


def test_two_stages_the_last_runs_as_a_numeric_non_root_user() -> None:
    build, final = stages()
    assert any(line.startswith("RUN pip wheel") for line in build)
    assert any(line.startswith("RUN --mount=type=bind,from=build,source=/wheels")
               and "pip install" in line for line in final)
    (user,) = [line.split()[1] for line in final if line.startswith("USER ")]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # runAsNonRoot can check a number only
    (useradd,) = [line for line in final if "useradd" in line]
    assert f"--uid {uid}" in useradd
    (health,) = [line for line in final if line.startswith("HEALTHCHECK")]
    assert "http://127.0.0.1:8000/health" in health
    assert "EXPOSE 8000" in final
    (cmd,) = [line for line in final if line.startswith("CMD ")]
    assert cmd == 'CMD ["ledger", "serve", "--host", "0.0.0.0", "--port", "8000"]'


def test_the_dockerignore_lets_through_what_the_build_copies() -> None:
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split()
    for source in copied_sources():
        assert f"!{source}" in ignore or f"!{source}/" in ignore, source


def copied_sources() -> list[str]:
    build = stages()[0]
    sources: list[str] = []
    for line in build:
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    return sources


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel the image installs, built from exactly the files the build stage copies."""
    context = tmp_path_factory.mktemp("context")
    for source in copied_sources():
        src = ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(src, context / source)
    out = tmp_path_factory.mktemp("wheels")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "--no-cache-dir", "--wheel-dir", str(out), str(context)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_carries_every_data_file(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    packages = [s for s in copied_sources() if (ROOT / s).is_dir()]
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in packages
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    missing = sorted(expected - names)
    assert not missing, f"the image would lack: {missing}"
    for data in ("ledger/policy/chips.toml", "ledger/policy/rulesets/ai-diffusion-2025.toml",
                 "migrations/env.py", "migrations/script.py.mako"):
        assert data in names
    assert any(n.startswith("migrations/versions/") for n in names)


def test_the_wheel_declares_the_command_and_run_time_dependencies(
    wheel: zipfile.ZipFile,
) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "ledger = ledger.cli:main" in wheel.read(entry_points).decode()
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [line.split(":", 1)[1].strip() for line in
                wheel.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    names = {re.split(r"[\s\[<>=;!~]", r, maxsplit=1)[0].lower() for r in requires
             if "extra ==" not in r}
    # Swagger UI's files (/schema offline), the bars and completion, the server.
    assert {"swagger-ui-py", "rich", "argcomplete", "uvicorn", "psycopg"} <= names
