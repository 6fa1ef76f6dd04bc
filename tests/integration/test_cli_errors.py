"""Every `ledger` command fails with one `error: ...` line on stderr and a non-zero
exit, never a traceback; no command but `serve` and `migrate` makes itself a new,
empty database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.bootstrap import shown_url
from ledger.cli import main, plural
from ledger.keys import create_key, key_events
from ledger.settings import get_settings
from ledger.store.engine import create_ledger_engine
from tests.conftest import POSTGRES_URL, START

ROOT = Path(__file__).resolve().parents[2]
LEDGER = [sys.executable, "-c", "import sys; from ledger.cli import main; sys.exit(main())"]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Runs `ledger ARGS` in this process with LEDGER_* settings; returns (code, out, err)."""

    def call(args: list[str], **env: str) -> tuple[int, str, str]:
        for name, value in env.items():
            monkeypatch.setenv(f"LEDGER_{name.upper()}", value)
        get_settings.cache_clear()
        try:
            code = main(args)
        finally:
            get_settings.cache_clear()
        out, err = capsys.readouterr()
        return code, out, err

    return call


def one_error_line(code: int, err: str) -> str:
    assert code != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_unknown_rule_set_is_one_line(run, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["replay", "--rule-set", "no-such-rules"], database_url=sqlite_url)
    line = one_error_line(code, err)
    assert "no-such-rules" in line and "ai-diffusion-2025" in line  # names the known ones
    code, _, err = run(["verify"], database_url=sqlite_url, rule_set="nope")
    assert code == 0  # verify needs no rule set
    code, _, err = run(["import-shipments", __file__], database_url=sqlite_url,
                       rule_set="nope")
    assert "nope" in one_error_line(code, err)


def test_missing_files_are_one_line(run, sqlite_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nothing-here.jsonl"
    for args in (["verify-bundle", str(missing)],
                 ["verify-bundle", __file__, "--public-key", str(tmp_path / "no.pem")],
                 ["import-shipments", str(missing)],
                 ["export", "--unsigned", "--out", str(tmp_path / "no" / "dir.jsonl")]):
        code, _, err = run(args, database_url=sqlite_url)
        line = one_error_line(code, err)
        assert "No such file or directory" in line and str(tmp_path) in line, args


def test_unreachable_database_and_unsupported_scheme_are_one_line(run) -> None:  # type: ignore[no-untyped-def]
    for url, expected in (
        ("postgresql://ledger:s3cret@127.0.0.1:1/ledger", "cannot open the database"),
        ("mysql://ledger:s3cret@127.0.0.1/ledger", "unsupported database 'mysql'"),
        ("not a url", "not a database URL"),
    ):
        for args in (["verify"], ["keys", "list"], ["migrate"], ["jobs", "runs"]):
            code, _, err = run(args, database_url=url)
            line = one_error_line(code, err)
            assert expected in line, (args, line)
            assert "s3cret" not in line
            if "@" in url:
                assert "ledger:***@127.0.0.1" in line


def test_a_missing_sqlite_database_is_refused_not_created(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "elsewhere" / "ledger.db"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "feed.csv").write_text("reservation_id,chip,quantity,ship_date,destination,"
                                       "consignee\n")
    url = f"sqlite:///{db}"
    for args in (["verify"], ["keys", "list"], ["keys", "revoke", "key_x"],
                 ["keys", "create", "--role", "admin", "--name", "ops"],
                 ["replay", "--rule-set", "post-rescission-2025"], ["jobs", "runs"],
                 ["jobs", "findings"], ["jobs", "run", "verify_chain"],
                 ["export", "--unsigned", "--out", str(tmp_path / "b.jsonl")],
                 ["import-shipments", str(tmp_path / "feed.csv")]):
        code, _, err = run(args, database_url=url)
        line = one_error_line(code, err)
        assert str(db) in line and "ledger migrate" in line, (args, line)
        assert not db.exists(), args
    code, out, _ = run(["migrate"], database_url=url)
    assert code == 0 and db.exists() and str(db) in out
    assert run(["keys", "list"], database_url=url)[0] == 0


def test_a_command_from_another_folder_creates_no_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([*LEDGER, "keys", "list"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: no database at sqlite:///{tmp_path / 'ledger.db'} (file not found); set "
        "LEDGER_DATABASE_URL, or run `ledger migrate` to create it"]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    admin = create_ledger_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", pool_size=1)
    name = f"ledger_empty_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL unreachable ({exc}); CI requires it", pytrace=False)
        pytest.skip(f"PostgreSQL unreachable ({exc})")
    yield sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(
        hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def test_a_postgres_database_without_the_schema_is_refused(run, empty_pg_url: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["keys", "list"], database_url=empty_pg_url)
    line = one_error_line(code, err)
    assert "has no ledger schema; run `ledger migrate`" in line
    assert shown_url(empty_pg_url) in line
    engine = create_ledger_engine(empty_pg_url)
    try:
        assert not sa.inspect(engine).has_table("entry")  # nothing was created
    finally:
        engine.dispose()
    assert run(["migrate"], database_url=empty_pg_url)[0] == 0
    assert run(["keys", "list"], database_url=empty_pg_url)[0] == 0


def test_keys_commands_create_list_expire_and_revoke(run, sqlite_url: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(["keys", "create", "--role", "vendor", "--name", "acme",
                        "--expires-in", "90d"], database_url=sqlite_url)
    assert code == 0 and out.startswith("tpl_")
    code, _, err = run(["keys", "create", "--role", "vendor", "--name", "old",
                        "--expires-at", "2020-01-01T00:00:00Z"], database_url=sqlite_url)
    assert "not in the future" in one_error_line(code, err)
    code, _, err = run(["keys", "create", "--role", "vendor", "--name", "x",
                        "--expires-in", "soon"], database_url=sqlite_url)
    assert "not a duration" in one_error_line(code, err)
    code, _, err = run(["keys", "create", "--role", "operator", "--name", "x"],
                       database_url=sqlite_url)
    assert "an operator key names its operator" in one_error_line(code, err)

    code, out, _ = run(["keys", "list"], database_url=sqlite_url)
    header, row = out.splitlines()
    assert header.split() == ["id", "role", "operator", "name", "created", "revoked",
                              "expires"]
    key_id, role, operator, name, _created, revoked, expires = row.split()
    assert (role, operator, name, revoked) == ("vendor", "-", "acme", "-")
    assert expires > "2026"

    code, _, err = run(["keys", "revoke", "key_unknown"], database_url=sqlite_url)
    assert "no API key 'key_unknown'" in one_error_line(code, err)
    code, out, _ = run(["keys", "revoke", key_id], database_url=sqlite_url)
    assert code == 0 and f"{key_id} revoked at" in out
    code, out, _ = run(["keys", "revoke", key_id], database_url=sqlite_url)
    assert code == 0 and "already revoked" in out
    assert run(["keys", "list"], database_url=sqlite_url)[1].split()[-2] != "-"
    engine = create_ledger_engine(sqlite_url)
    try:
        events = key_events(engine, key_id)
    finally:
        engine.dispose()
    assert [e["action"] for e in events] == ["created", "revoked"]
    assert all(e["actor"].startswith("cli:") for e in events)


def test_plural() -> None:
    assert plural(1, "signed checkpoint") == "1 signed checkpoint"
    assert plural(2, "signed checkpoint") == "2 signed checkpoints"
    assert plural(1, "entry", "entries") == "1 entry"
    assert plural(0, "entry", "entries") == "0 entries"


def test_forbidden_message_uses_the_right_article() -> None:
    from api.auth import with_article

    assert with_article("operator") == "an operator"
    assert with_article("admin") == "an admin"
    assert with_article("auditor") == "an auditor"
    assert with_article("vendor") == "a vendor"


def test_serve_says_which_database_it_opened(tmp_path: Path, sqlite_url: str) -> None:
    engine = create_ledger_engine(sqlite_url)
    create_key(engine, "admin", "x", START)
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(PYTHONPATH=str(ROOT), LEDGER_DATABASE_URL=sqlite_url,
               LEDGER_JOBS_IN_SERVE="false")
    proc = subprocess.Popen([*LEDGER, "serve", "--port", "0"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        first = proc.stderr.readline()
        assert time.monotonic() < deadline
        assert first.strip() == f"database: {sqlite_url}"
    finally:
        proc.terminate()
        proc.wait(10)
    assert shown_url("postgresql://u:pw@db/ledger") == "postgresql://u:***@db/ledger"
