"""The `ledger` command. Every subcommand reads the same settings and exits
non-zero on failure."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
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

    from ledger.bootstrap import open_engine

    # The embedded default runs the scheduled jobs inside the server (jobs.runner);
    # LEDGER_JOBS_IN_SERVE=false leaves them to `ledger jobs`.
    os.environ.setdefault("LEDGER_JOBS_IN_SERVE", "true")
    get_settings.cache_clear()
    open_engine(get_settings()).dispose()  # migrates an empty database before serving
    # The group-commit writer thread is busy Python; a shorter GIL switch interval
    # keeps the event loop answering while it works (default 5 ms).
    sys.setswitchinterval(0.0005)
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
    return 0


@command("migrate")
def migrate(args: argparse.Namespace) -> int:
    from ledger.bootstrap import open_engine

    open_engine(get_settings()).dispose()
    print("schema is at head")
    return 0


@command("verify")
def verify(args: argparse.Namespace) -> int:
    from ledger.audit import verify_chain_parallel
    from ledger.bootstrap import open_engine

    report = verify_chain_parallel(open_engine(get_settings()), processes=args.processes)
    print(f"entries: {report.entries}")
    print(f"head: {report.head}")
    if report.ok:
        print("chain: ok")
        return 0
    print(f"chain: BROKEN at seq {report.first_bad_seq}: {report.reason}")
    return 1


@command("keys")
def keys(args: argparse.Namespace) -> int:
    from ledger.bootstrap import open_engine
    from ledger.clock import SystemClock
    from ledger.keys import create_key

    engine = open_engine(get_settings())
    key = create_key(engine, args.role, args.name, SystemClock().now(), args.operator)
    print(key)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ledger", description="The TPP quota ledger.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="migrate an empty database, then serve HTTP")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--access-log", action="store_true", help="log every request")

    sub.add_parser("migrate", help="apply database migrations")
    p = sub.add_parser("verify", help="walk the hash chain; non-zero exit when broken")
    p.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                   help="processes that verify seq ranges in parallel (large ledgers)")

    p = sub.add_parser("keys", help="manage API keys")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=["admin", "vendor", "operator", "auditor"])
    create.add_argument("--name", required=True)
    create.add_argument("--operator", default=None, help="operator id (operator keys only)")

    for extend in EXTENSIONS:
        extend(sub)
    return parser


# Other modules (jobs, replay, export) add subcommands here without this file
# knowing their internals.
EXTENSIONS: list[Callable[[Any], None]] = []


def _load_extensions() -> None:
    import importlib

    for module in ("ledger.replay_cli", "jobs.cli"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def main(argv: Sequence[str] | None = None) -> int:
    _load_extensions()
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except LedgerError as err:
        print(f"error: {err.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
