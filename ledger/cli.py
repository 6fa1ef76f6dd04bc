"""The `ledger` command. Every subcommand reads the same settings and exits
non-zero on failure."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ledger.errors import LedgerError
from ledger.settings import get_settings

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        COMMANDS[name] = fn
        return fn

    return register


@command("serve")
def serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from ledger.bootstrap import open_engine, shown_url

    # The embedded default runs the scheduled jobs inside the server (jobs.runner);
    # LEDGER_JOBS_IN_SERVE=false leaves them to `ledger jobs`.
    os.environ.setdefault("LEDGER_JOBS_IN_SERVE", "true")
    get_settings.cache_clear()
    settings = get_settings()
    use_writer = args.writer_process or settings.writer_process
    if use_writer and not settings.database_url.startswith(("postgresql", "postgres")):
        raise LedgerError("--writer-process (LEDGER_WRITER_PROCESS) is for PostgreSQL only; "
                          "with SQLite the server writes in its own process: drop the flag")
    open_engine(settings, create=True).dispose()  # migrates an empty database before serving
    print(f"database: {shown_url(settings.database_url)}", file=sys.stderr, flush=True)
    # The GIL switch interval stays at Python's 5 ms: a shorter one (0.5 ms, tried for
    # the event loop's sake) lost throughput to switching between it and the group
    # commit's writer thread in A/B runs (BENCHMARKS.md).
    supervisor = None
    if use_writer:
        from ledger.writer_process import SOCKET_ENV, WriterSupervisor

        supervisor = WriterSupervisor()
        supervisor.start()  # the workers connect to it; it is restarted if it dies
        os.environ[SOCKET_ENV] = supervisor.socket_path
        get_settings.cache_clear()
        print(f"writer process: pid {supervisor.proc.pid if supervisor.proc else '?'}",
              file=sys.stderr, flush=True)
    try:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level="info",
            # Per-request access lines cost more than a headroom read; problems are
            # still logged by the app, and `--access-log` turns them back on.
            access_log=args.access_log,
        )
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


@command("writer")
def writer(args: argparse.Namespace) -> int:
    from ledger.writer_process import writer_main

    return writer_main(args.socket, max_batch=args.max_batch, max_wait=args.max_wait)


@command("migrate")
def migrate(args: argparse.Namespace) -> int:
    from ledger.bootstrap import open_engine, shown_url

    settings = get_settings()
    open_engine(settings, create=True).dispose()
    print(f"schema is at head: {shown_url(settings.database_url)}")
    return 0


@command("verify")
def verify(args: argparse.Namespace) -> int:
    from ledger.audit import chain_head_seq, verify_chain_parallel
    from ledger.bootstrap import open_engine
    from ledger.heads import KeyRing, check_heads, read_witness
    from ledger.progress import progress_bar

    settings = get_settings()
    engine = open_engine(settings)
    with progress_bar("verifying", chain_head_seq(engine)) as update:
        report = verify_chain_parallel(engine, processes=args.processes,
                                       progress=update)
    print(f"entries: {report.entries}")
    print(f"head: {report.head}")
    if report.ok:
        print("chain: ok")
    else:
        print(f"chain: BROKEN at seq {report.first_bad_seq}: {report.reason}")
    keys = KeyRing.load(settings.signing_key_path,
                        args.public_keys or settings.signing_public_keys)
    witnessed = []
    for source in args.witness:
        heads = read_witness(source)
        print(f"witness {source}: {plural(len(heads), 'signed head')}"
              + (f", last at seq {max(h.seq for h in heads)}" if heads else ""))
        witnessed += heads
    signing = bool(keys.public) if args.signing is None else args.signing
    checked = check_heads(engine, keys, witnessed, signing=signing)
    where = f", last at seq {checked.last_signed}" if checked.last_signed is not None else ""
    print(f"signed heads: {plural(checked.signed_heads, 'signed head')} in the database{where}")
    if not keys.public:
        print("signatures: NOT checked (no key: set LEDGER_SIGNING_KEY_PATH or pass "
              "--public-keys)")
    else:
        print(f"signatures: checked against keys {', '.join(sorted(keys.public))}")
    labels = {"truncated": "TRUNCATED OR ROLLED BACK", "broken": "BROKEN",
              "unsigned": "UNSIGNED", "signature": "BAD SIGNATURE"}
    for problem in sorted(checked.problems, key=lambda p: p.seq):
        print(f"heads: {labels.get(problem.kind, problem.kind)} at seq {problem.seq}: "
              f"{problem.message}")
    if checked.ok:
        print("heads: ok" + ("" if witnessed else " (no witness given: truncation past the "
                             "last signed head in the database is not checked)"))
    return 0 if report.ok and checked.ok else 1


@command("keys")
def keys(args: argparse.Namespace) -> int:
    from ledger.bootstrap import open_engine
    from ledger.clock import SystemClock
    from ledger.keys import create_key, list_keys, revoke_key

    now = SystemClock().now()
    if args.keys_command == "create":
        # Check the arguments before touching the database.
        expires_at = _expiry(args, now)
        engine = open_engine(get_settings())
        print(create_key(engine, args.role, args.name, now, args.operator, expires_at))
        return 0
    engine = open_engine(get_settings())
    if args.keys_command == "list":
        rows, cursor = list_keys(engine, limit=500)
        while cursor:
            more, cursor = list_keys(engine, cursor, limit=500)
            rows += more
        _print_keys(rows, now)
        return 0
    view, changed = revoke_key(engine, args.key_id, now)
    if changed:
        print(f"{view['id']} revoked at {view['revoked_at']}")
    else:
        print(f"{view['id']} was already revoked at {view['revoked_at']}; nothing changed")
    _announce(view["id"])  # again on a repeat, in case the first notice was lost
    return 0


def _expiry(args: argparse.Namespace, now: datetime) -> datetime | None:
    from ledger.errors import InvalidInput
    from ledger.keys import parse_duration

    if args.expires_in:
        return now + parse_duration(args.expires_in)
    if args.expires_at:
        try:
            at = datetime.fromisoformat(args.expires_at)
        except ValueError:
            raise InvalidInput(f"--expires-at {args.expires_at!r} is not an ISO 8601 time "
                               "(e.g. 2026-03-01T00:00:00Z)", field="expires_at") from None
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return None


def _print_keys(rows: list[dict[str, Any]], now: datetime) -> None:
    from ledger.chain import format_time

    if not rows:
        print("no API keys")
        return
    header = ("id", "role", "operator", "name", "created", "revoked", "expires")
    current = format_time(now)
    table = [header] + [
        (r["id"], r["role"], r["operator_id"] or "-", r["name"], r["created_at"],
         r["revoked_at"] or "-",
         (r["expires_at"] or "never")
         + (" (expired)" if r["expires_at"] and r["expires_at"] <= current else ""))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())


def _announce(key_id: str) -> None:
    """Tells the running API processes (through Redis) to drop the key now."""
    from ledger.keys import announce_revocation

    redis_url = get_settings().redis_url
    if not redis_url:
        print(f"no LEDGER_REDIS_URL: API processes without Redis refuse it within "
              f"{SHORT_TTL_NOTE}, those with Redis within {LIVE_TTL_NOTE}", file=sys.stderr)
        return
    try:
        reached, confirmed = announce_revocation(redis_url, key_id)
    except Exception as exc:  # revoked all the same; say what was not done
        print(f"warning: Redis unreachable ({type(exc).__name__}); API processes refuse "
              f"it within {LIVE_TTL_NOTE}", file=sys.stderr)
        return
    if reached == 0:
        print("no API process is listening on Redis; any running without it refuses the key "
              f"within {SHORT_TTL_NOTE}", file=sys.stderr)
    else:
        print(f"{confirmed} of {plural(reached, 'API process', 'API processes')} confirmed "
              "they refuse it", file=sys.stderr)


# Kept in step with api.principals (SHORT_TTL_S, LIVE_TTL_S); ledger/ imports nothing
# from api/.
SHORT_TTL_NOTE = "5 s"
LIVE_TTL_NOTE = "30 s"


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 row`, `2 rows`, `0 signed checkpoints`."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


SHELLS = ("bash", "zsh", "fish")


@command("completion")
def completion(args: argparse.Namespace) -> int:
    """Prints the shell's completion script (argcomplete): each TAB asks `ledger`
    itself, so subcommands added later complete without a new script."""
    import argcomplete

    names = " ".join(sorted(COMMANDS))
    print(f"# ledger completion for {args.shell}; subcommands: {names}")
    print(argcomplete.shellcode(["ledger"], shell=args.shell))
    return 0


def _describe(parser: argparse.ArgumentParser) -> None:
    """`ledger CMD --help` opens with the one-line help `ledger --help` lists, unless
    the subcommand has a longer description of its own (extensions too)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                line = helps.get(name, "")
                if child.description is None and line:
                    child.description = line[:1].upper() + line[1:] + "."
                _describe(child)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger", description="The TPP quota ledger.",
        epilog="Settings come from LEDGER_* environment variables (see the README's "
        "Configuration). `ledger CMD --help` describes each command; `ledger completion "
        "bash|zsh|fish` prints a shell completion script.")
    parser.add_argument("--traceback", action="store_true",
                        help="on an unexpected failure, show the full traceback")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="migrate an empty database, then serve HTTP")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (default 1; scale out with replicas instead)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--writer-process", action="store_true",
                   help="PostgreSQL: write through one separate writer process shared by "
                   "the workers, out of their GIL (also LEDGER_WRITER_PROCESS=true)")

    p = sub.add_parser("writer", help="the writer process `serve --writer-process` starts "
                       "(PostgreSQL; group commit for commands sent over a Unix socket)")
    p.add_argument("--socket", required=True, help="path of the Unix socket to listen on")
    p.add_argument("--max-batch", type=int, default=256, help="commands per transaction")
    p.add_argument("--max-wait", type=float, default=0.002,
                   help="seconds a small batch waits for more commands (default 0.002)")

    sub.add_parser("migrate", help="create the database if need be and apply migrations")
    p = sub.add_parser("verify", help="walk the hash chain; non-zero exit when broken")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="processes that verify seq ranges in parallel (large ledgers)")
    p.add_argument("--witness", action="append", default=[], metavar="FILE_OR_URL",
                   help="signed heads kept outside the database (witness file, or a URL "
                   "serving its lines); the chain must extend every one (repeatable)")
    p.add_argument("--public-keys", default=None, metavar="PEM_FILE_OR_DIR",
                   help="public keys to check signatures with (default: the configured "
                   "signing key and LEDGER_SIGNING_PUBLIC_KEYS)")
    signing = p.add_mutually_exclusive_group()
    signing.add_argument("--signing", dest="signing", action="store_true", default=None,
                         help="entries past the last signed head are a failure (default "
                         "when any key is known: the signing key, LEDGER_SIGNING_PUBLIC_KEYS "
                         "or --public-keys)")
    signing.add_argument("--no-signing", dest="signing", action="store_false",
                         help="entries past the last signed head are not a failure")

    p = sub.add_parser("keys", help="manage API keys")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=["admin", "vendor", "operator", "auditor"],
                        help="what the key may do (see the README's roles)")
    create.add_argument("--name", required=True, help="a label for people: who holds the key")
    create.add_argument("--operator", default=None, help="operator id (operator keys only)")
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", default=None, metavar="DURATION",
                        help="refuse the key after this long: 90d, 12h, 30m, 2w")
    expiry.add_argument("--expires-at", default=None, metavar="TIME",
                        help="refuse the key from this instant (ISO 8601; UTC if no zone)")
    keys_sub.add_parser("list", help="list keys: id, role, operator, name, created, "
                        "revoked, expires")
    revoke = keys_sub.add_parser("revoke", help="revoke a key: refused from now on")
    revoke.add_argument("key_id", help="the key's id, as `ledger keys list` shows it")

    for extend in EXTENSIONS:
        extend(sub)
    p = sub.add_parser("completion", help="print a shell completion script",
                       description="Print a completion script for SHELL. Enable it with "
                       "`eval \"$(ledger completion bash)\"` in ~/.bashrc (zsh: the same in "
                       "~/.zshrc, after compinit; fish: `ledger completion fish | source`).")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")
    _describe(parser)
    return parser


# Other modules (jobs, replay, export) add subcommands here without this file
# knowing their internals.
EXTENSIONS: list[Callable[[Any], None]] = []


def _load_extensions() -> None:
    import importlib

    for module in ("ledger.replay_cli", "ledger.merkle_cli", "ledger.screening.cli", "jobs.cli"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command. Every failure is one `error: ...` line on stderr and a
    non-zero exit (2: the request or the setup is wrong; 1: something failed)."""
    _load_extensions()
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # a TAB in a shell with `ledger completion` enabled
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a command never ends in a traceback
        if args.traceback:
            raise
        message, code = describe_failure(exc)
        print(f"error: {message}", file=sys.stderr)
        return code


def describe_failure(exc: BaseException) -> tuple[str, int]:
    """One line for people, and the exit code, for any failure of a command."""
    import sqlalchemy as sa
    from pydantic import ValidationError

    from ledger.bootstrap import first_line, shown_url
    from ledger.policy.ruleset import RuleSetError

    if isinstance(exc, LedgerError):
        return exc.detail, 2
    if isinstance(exc, RuleSetError):
        return f"rule set {exc}", 2
    if isinstance(exc, ValidationError):
        problem = exc.errors()[0]
        where = "_".join(str(part) for part in problem["loc"]).upper()
        return f"setting LEDGER_{where}: {problem['msg']}", 2
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or first_line(exc)}", 2
    if isinstance(exc, sa.exc.DBAPIError):
        url = shown_url(get_settings().database_url)
        what = ("cannot reach the database" if isinstance(exc, sa.exc.OperationalError)
                else "the database refused a statement")
        return f"{what} at {url}: {first_line(exc.orig or exc)}", 1
    if isinstance(exc, OSError):
        return first_line(exc), 1
    return (f"unexpected {type(exc).__name__}: {first_line(exc)} "
            "(run with --traceback for details)", 1)


if __name__ == "__main__":
    sys.exit(main())
