"""`ledger screening import FILE | versions [--at T] | matches [--party-id ID]`."""

from __future__ import annotations

import argparse
import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.cli import EXTENSIONS, command
from ledger.errors import InvalidInput
from ledger.settings import get_settings


def _add_parser(sub: Any) -> None:
    p = sub.add_parser("screening", help="restricted-party lists and matches",
                       description="Import a restricted-party list (the Consolidated "
                       "Screening List's CSV layout), show list versions and matches.")
    s = p.add_subparsers(dest="screening_command", required=True, metavar="COMMAND")
    imp = s.add_parser("import", help="import a list version and rescreen every party",
                       description="Import FILE as the list version in force from now and "
                       "rescreen every operator and consignee. The same file as the version "
                       "in force changes nothing; a malformed row rejects the whole file.")
    imp.add_argument("file", help="CSV file with the Consolidated Screening List's header")
    ver = s.add_parser("versions", help="list versions, or the one in force at an instant")
    ver.add_argument("--at", metavar="TIME",
                     help="RFC 3339 instant: show the version in force then")
    mat = s.add_parser("matches", help="current matches and their state")
    mat.add_argument("--party-id", metavar="ID", help="only this party's")
    mat.add_argument("--json", action="store_true", help="print JSON")


EXTENSIONS.append(_add_parser)


def _instant(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--at {text!r} is not an RFC 3339 time", field="at") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@command("screening")
def screening_command(args: argparse.Namespace) -> int:
    from ledger.bootstrap import open_engine
    from ledger.clock import SystemClock
    from ledger.screening.imports import import_list, list_versions, version_at
    from ledger.screening.lists import ListError

    settings = get_settings()
    if args.screening_command == "import":
        path = Path(args.file)
        content = path.read_bytes()  # OSError: one line naming the file
        engine = open_engine(settings)
        try:
            result = import_list(engine, content, source=path.name,
                                 actor=f"cli:{getpass.getuser()}"[:64],
                                 now=SystemClock().now())
        except ListError as exc:
            raise InvalidInput(f"{path}: {exc}; nothing imported", field="file") from None
        if not result.changed:
            print(f"unchanged: {path.name} is the list version in force "
                  f"(version {result.version_id}, sha256 {result.sha256[:16]}..., "
                  f"imported {result.imported_at})")
            return 0
        print(f"imported version {result.version_id}: {result.entries} entries, sha256 "
              f"{result.sha256[:16]}..., in force from {result.imported_at}; rescreened "
              f"{result.parties} parties: {result.matches} matches, "
              f"{result.findings} new findings")
        return 0
    engine = open_engine(settings)
    if args.screening_command == "versions":
        if args.at:
            row = version_at(engine, _instant(args.at))
            print(json.dumps(row) if row else f"no list version was in force at {args.at}")
            return 0
        for v in list_versions(engine):
            print(f"{v['version_id']}  {v['imported_at']}  {v['sha256'][:16]}  "
                  f"{v['entries']} entries  {v['source']}  {v['actor']}")
        return 0
    from sqlalchemy.orm import Session

    from ledger.policy.ruleset import load_rule_set
    from ledger.screening.screen import list_matches

    with Session(engine) as session:
        items = list_matches(session, args.party_id, load_rule_set(settings.rule_set),
                             SystemClock().now())
    if args.json:
        print(json.dumps({"items": items}, indent=2))
        return 0
    for m in items:
        print(f"{m['party_kind']} {m['party_id']}  {m['entry_id']}  {m['matched_on']}  "
              f"{m['score']:g}  {m['state']}  {m['list']}")
    if not items:
        print("no matches")
    return 0
