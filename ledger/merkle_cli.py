"""`ledger merkle catch-up | rebuild | verify | prove`: the Merkle node table
(ledger.merkle_store) from the command line."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ledger.cli import EXTENSIONS, command, plural
from ledger.settings import get_settings


def _add_parser(sub: Any) -> None:
    p = sub.add_parser("merkle", help="Merkle tree nodes: catch up, rebuild, verify, prove")
    msub = p.add_subparsers(dest="merkle_command", required=True)
    msub.add_parser("catch-up", help="store the nodes of entries not yet covered")
    msub.add_parser("rebuild", help="delete every node and recompute them from entries")
    msub.add_parser("verify", help="recompute every stored node from entries and compare")
    prove = msub.add_parser("prove", help="print an inclusion or consistency proof as JSON")
    prove.add_argument("--seq", type=int, help="inclusion of this entry ...")
    prove.add_argument("--head-seq", type=int, help="... in the tree of this size (default: head)")
    prove.add_argument("--from", dest="first", type=int, help="consistency from this size ...")
    prove.add_argument("--to", type=int, help="... to this size (default: head)")


EXTENSIONS.append(_add_parser)


@command("merkle")
def merkle_command(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from ledger.bootstrap import open_engine
    from ledger.merkle_store import (
        catch_up,
        chain_size,
        prove_consistency,
        prove_inclusion,
        rebuild,
        verify_nodes,
    )

    engine = open_engine(get_settings())
    action = args.merkle_command
    started = time.perf_counter()
    if action == "catch-up":
        added = catch_up(engine)
        print(f"added {plural(added, 'node')} in {time.perf_counter() - started:.1f} s")
        return 0
    if action == "rebuild":
        added = rebuild(engine)
        print(f"rebuilt {plural(added, 'node')} in {time.perf_counter() - started:.1f} s")
        return 0
    if action == "verify":
        report = verify_nodes(engine)
        print(f"leaves walked: {report.leaves:,}; nodes checked: {report.checked:,}; "
              f"covered up to seq {report.coverage:,}")
        if report.ok:
            print("merkle nodes: ok")
            return 0
        print(f"merkle nodes: WRONG from seq {report.first_bad_seq()}: "
              f"{len(report.wrong)} wrong, {len(report.missing)} missing, "
              f"{report.beyond} past the chain's end; fix: ledger merkle rebuild")
        return 1
    with Session(engine) as session:
        head = chain_size(session)
        if args.seq is not None:
            doc = prove_inclusion(session, args.seq, args.head_seq or head).doc()
        elif args.first is not None:
            doc = prove_consistency(session, args.first, args.to or head).doc()
        else:
            raise SystemExit("error: prove needs --seq or --from")
    print(json.dumps(doc, indent=2))
    return 0
