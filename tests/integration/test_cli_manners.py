"""CLI manners: every command and option explains itself in --help, shell
completion works, and progress bars show on a terminal only (a pipe gets exactly
the lines it got before)."""

from __future__ import annotations

import argparse
import io
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ledger.audit import verify_chain, verify_chain_parallel
from ledger.cli import SHELLS, _load_extensions, build_parser, main
from ledger.clock import ManualClock
from ledger.progress import progress_bar
from ledger.service import Ledger
from ledger.store.engine import create_ledger_engine
from tests.conftest import START
from tests.factories import consignee, line, operator, reserve

LEDGER = [sys.executable, "-c", "import sys; from ledger.cli import main; sys.exit(main())"]
ROOT = Path(__file__).resolve().parents[2]


def commands() -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    """(path, parser) for `ledger` and every subcommand, nested ones included."""
    _load_extensions()

    def walk(path: list[str], parser: argparse.ArgumentParser) -> Iterator[
            tuple[list[str], argparse.ArgumentParser]]:
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk([*path, name], child)

    yield from walk([], build_parser())


COMMANDS = list(commands())


@pytest.mark.parametrize("path,parser", COMMANDS, ids=lambda v: " ".join(v) or "ledger"
                         if isinstance(v, list) else "")
def test_help_of_every_command_exits_0_and_explains_every_option(
    path: list[str], parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith(f"usage: {' '.join(['ledger', *path])}")
    if path:
        assert parser.description, f"`ledger {' '.join(path)} --help` has no description"
        assert " ".join(parser.description.split()) in text
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):  # each choice has its help
            for choice in action._choices_actions:
                assert choice.help, f"ledger {' '.join(path)} {choice.dest} has no help"
                assert choice.dest in text
            continue
        assert action.help and action.help != argparse.SUPPRESS, (
            f"ledger {' '.join(path)}: {action.option_strings or action.dest} has no help")
        for option in action.option_strings or [action.metavar or action.dest]:
            assert option in text, f"`ledger {' '.join(path)} --help` does not show {option}"
        first_words = " ".join(action.help.split()[:3]).replace("%%", "%")
        assert first_words in text


def test_every_subcommand_is_listed_with_help() -> None:
    names = {" ".join(path) for path, _ in COMMANDS if len(path) == 1}
    assert {"serve", "migrate", "verify", "keys", "replay", "export", "verify-bundle",
            "import-shipments", "jobs", "completion"} <= names


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_prints_a_script_naming_the_subcommands(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert "ledger" in script and "_ARGCOMPLETE" in script
    for path, _ in COMMANDS:
        if len(path) == 1:
            assert path[0] in script


def complete(line: str, tmp_path: Path) -> list[str]:
    """What a TAB after `line` offers, asked the way the shell scripts ask (they read
    the answer from fd 8; argcomplete writes it to a file when told to)."""
    answer = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_IFS": "\n",
           "_ARGCOMPLETE_SHELL": "bash", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "_ARGCOMPLETE_STDOUT_FILENAME": str(answer)}
    done = subprocess.run(LEDGER, env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return [word.strip() for word in answer.read_text().split("\n") if word.strip()]


def test_completion_completes_subcommands_options_and_choices(tmp_path: Path) -> None:
    assert set(complete("ledger ver", tmp_path)) == {"verify", "verify-bundle"}
    assert "--processes" in complete("ledger verify --p", tmp_path)
    assert "reconcile" in complete("ledger jobs run ", tmp_path)
    assert set(SHELLS) <= set(complete("ledger completion ", tmp_path))


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_accepts_the_script() -> None:
    script = subprocess.run([*LEDGER, "completion", "bash"], capture_output=True, text=True,
                            check=True).stdout
    registered = subprocess.run(["bash", "-c", script + "\ncomplete -p ledger"],
                                capture_output=True, text=True, timeout=60)
    assert registered.returncode == 0, registered.stderr
    assert "ledger" in registered.stdout


@pytest.fixture
def books(sqlite_url: str, rule_set) -> Iterator[str]:  # type: ignore[no-untyped-def]
    engine = create_ledger_engine(sqlite_url)
    ledger = Ledger(engine, rule_set, ManualClock(START))
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    for q in (1, 2, 3):
        res = reserve(ledger, line("SG", "sg-lab", quantity=q)).reservation
        assert res is not None
        ledger.commit(res.id, "vendor1")
    engine.dispose()
    yield sqlite_url


def run_ledger(args: list[str], url: str, **kwargs):  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    return subprocess.run([*LEDGER, *args], env={**env, "LEDGER_DATABASE_URL": url},
                          timeout=120, **kwargs)


def test_verify_in_a_pipe_prints_no_progress(books: str) -> None:
    done = run_ledger(["verify"], books, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # nothing but the report: no bar, no escape codes
    lines = done.stdout.splitlines()
    assert lines[0] == "entries: 6"
    assert lines[2] == "chain: ok"
    assert "\x1b" not in done.stdout and "\r" not in done.stdout


def test_export_and_replay_in_a_pipe_print_no_progress(books: str, tmp_path: Path) -> None:
    out = tmp_path / "bundle.jsonl"
    done = run_ledger(["export", "--unsigned", "--out", str(out)], books, capture_output=True,
                      text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith(f"wrote {out}: 6 entries (seq 1..6)")
    done = run_ledger(["replay", "--rule-set", "ai-diffusion-2025"], books,
                      capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_verify_on_a_terminal_draws_a_bar_on_stderr_only(books: str) -> None:
    master, slave = pty.openpty()
    try:
        done = run_ledger(["verify"], books, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert done.returncode == 0
    assert b"verifying" in seen  # the bar, on the terminal
    assert done.stdout.decode().splitlines()[0] == "entries: 6"  # the report, unchanged
    assert b"verifying" not in done.stdout


def test_progress_bar_counts_what_the_work_reports(books: str) -> None:
    from rich.console import Console

    engine = create_ledger_engine(books)
    try:
        seen: list[int] = []
        assert verify_chain(engine, batch=4, progress=seen.append).ok
        assert seen == [4, 6]
        seen.clear()
        assert verify_chain_parallel(engine, processes=1, progress=seen.append).ok
        assert seen[-1] == 6
        with sa.Engine.connect(engine) as conn:
            assert conn.exec_driver_sql("SELECT seq FROM chain_head").scalar_one() == 6
    finally:
        engine.dispose()
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with progress_bar("verifying", 6, console=console) as update:
        update(3)
        update(6)
    assert "verifying" in screen.getvalue()
