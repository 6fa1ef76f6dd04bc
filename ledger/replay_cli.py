"""`ledger replay --rule-set NAME`: what the recorded history would look like under
another rule set. Read-only; prints a human summary, or JSON with --json."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ledger.cli import EXTENSIONS, command
from ledger.settings import get_settings


def _add_parser(sub: Any) -> None:
    p = sub.add_parser("replay", help="re-decide the recorded history under another rule set",
                       description="Re-decide every recorded reservation under another rule "
                       "set and report what would differ. Read-only.")
    p.add_argument("--rule-set", required=True, metavar="NAME_OR_FILE",
                   help="built-in name (e.g. ai-diffusion-2025) or path to a TOML file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--max-differences", type=int, default=20, metavar="N",
                   help="how many differing lines to list (default 20)")


EXTENSIONS.append(_add_parser)


@command("replay")
def replay_command(args: argparse.Namespace) -> int:
    from ledger.audit import chain_head_seq
    from ledger.bootstrap import open_engine
    from ledger.policy.ruleset import load_rule_set
    from ledger.progress import progress_bar
    from ledger.replay import replay

    rule_set = load_rule_set(args.rule_set)
    engine = open_engine(get_settings())
    with progress_bar("replaying", chain_head_seq(engine)) as update:
        report = replay(engine, rule_set, args.max_differences, update).to_dict()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"replayed under {report['rule_set']} v{report['rule_set_version']}")
    print(
        f"reservations: {report['reservations']}  lines: {report['lines']}  "
        f"same path: {report['same_path']}  other path: {report['other_path']}  "
        f"would be denied: {report['denied_reservations']}  "
        f"unresolvable: {report['unresolvable']}"
    )
    print("TPP by destination (recorded -> replayed):")
    for country, t in report["tpp_by_country"].items():
        print(f"  {country}: {t['recorded']:,} -> {t['replayed']:,}")
    if report["first_differences"]:
        print("first differing lines:")
        for d in report["first_differences"]:
            new = d["replayed_path"] or f"denied ({', '.join(d['constraints'])})"
            print(f"  {d['reservation_id']} line {d['line']} {d['country']} "
                  f"{d['tpp']:,} TPP: {d['recorded_path']} -> {new}")
    return 0
