"""Subcommands of `ledger` for the jobs: scheduler, manual runs, bundles, shipment feeds.

Imported by ledger.cli when present; adds its parsers to ledger.cli.EXTENSIONS.
Every command exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from ledger.cli import EXTENSIONS, command, plural
from ledger.settings import get_settings

if TYPE_CHECKING:
    from ledger.progress import Update


def _print(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True, default=str))


@command("jobs")
def jobs_command(args: argparse.Namespace) -> int:
    from jobs.runner import JobBusy, JobRunner, run_forever
    from ledger.bootstrap import open_engine, open_ledger
    from ledger.job_records import list_findings, list_job_runs

    settings = get_settings()
    action = args.jobs_action
    if action in ("runs", "findings"):
        engine = open_engine(settings)
        if action == "runs":
            _print(list_job_runs(engine, job=args.job, limit=args.limit))
        else:
            _print(list_findings(engine, kind=args.kind, limit=args.limit))
        return 0
    ledger = open_ledger(settings)
    if action is None:
        run_forever(ledger, settings)
        return 0
    options = {"repair": args.repair} if args.repair else {}
    if args.full:
        options["full"] = True
    try:
        run_id, result = JobRunner(ledger, settings).run_now(args.job, options)
    except JobBusy:
        print(f"error: {args.job} is running in another process; try again later",
              file=sys.stderr)
        return 3
    _print({"job": args.job, "run_id": run_id, "outcome": result.outcome,
            "figures": result.figures})
    return 1 if result.outcome == "failed" else 0


@command("signing-key")
def signing_key_command(args: argparse.Namespace) -> int:
    from jobs.signing import create_signing_key

    try:
        public = create_signing_key(Path(args.path))
    except FileExistsError:
        print(f"error: {args.path} exists; refusing to overwrite a signing key", file=sys.stderr)
        return 2
    print(f"private key written to {args.path} (mode 0600); set LEDGER_SIGNING_KEY_PATH to it",
          file=sys.stderr)
    print(public, end="")
    return 0


def _export_csv(args: argparse.Namespace, settings: Any) -> int:
    """Entries seq >= --since matching the filters as CSV (ledger.csv_export), page by
    page, to --out (`-`: stdout)."""
    from ledger.bootstrap import open_engine
    from ledger.csv_export import write_entries_csv
    from ledger.policy.ruleset import load_rule_set
    from ledger.queries import EntryFilter, LedgerReader

    engine = open_engine(settings)
    reader = LedgerReader(engine, load_rule_set(settings.rule_set))
    filt = EntryFilter(args.country, args.operator_id, args.consignee_id, args.kind)
    if args.out == "-":
        count = write_entries_csv(reader, filt, sys.stdout, after_seq=max(args.since - 1, 0))
    else:
        with open(args.out, "w", encoding="utf-8", newline="") as file:
            count = write_entries_csv(reader, filt, file, after_seq=max(args.since - 1, 0))
    print(f"wrote {args.out}: {plural(count, 'entry', 'entries')} (CSV)", file=sys.stderr)
    return 0


@command("export")
def export_command(args: argparse.Namespace) -> int:
    from jobs.bundle import export_bundle
    from ledger.bootstrap import open_engine
    from ledger.clock import SystemClock

    settings = get_settings()
    if args.format == "csv":
        return _export_csv(args, settings)
    if not settings.signing_key_path and not args.unsigned:
        print("error: LEDGER_SIGNING_KEY_PATH is not set (or pass --unsigned)", file=sys.stderr)
        return 2
    from ledger.audit import chain_head_seq
    from ledger.progress import progress_bar

    engine = open_engine(settings)
    total = max(chain_head_seq(engine) - args.since + 1, 0)
    with open(args.out, "wb") as file, progress_bar("exporting", total) as update:
        out = cast("IO[bytes]", _Counting(file, update))
        summary = export_bundle(engine, args.since, out, SystemClock().now(),
                                None if args.unsigned else settings.signing_key_path,
                                settings.signing_public_keys)
    print(f"wrote {args.out}: {plural(summary.entries, 'entry', 'entries')} "
          f"{_seq_range(summary.first_seq, summary.last_seq)}, "
          f"{plural(summary.checkpoints, 'signed checkpoint')}, "
          + (f"{plural(summary.heads, 'signed head')}, " if summary.heads else "")
          + f"{'signed' if summary.signed else 'UNSIGNED'}")
    return 0


class _Counting:
    """A file that reports how many lines (bundle items) were written through it."""

    def __init__(self, file: IO[bytes], update: Update) -> None:
        self.file, self.update, self.lines = file, update, 0

    def write(self, data: bytes) -> int:
        self.lines += data.count(b"\n")
        if self.lines % 1000 == 0:
            self.update(self.lines)
        return self.file.write(data)


@command("verify-bundle")
def verify_bundle_command(args: argparse.Namespace) -> int:
    # Offline on purpose: no settings, no database, only the file (and a pinned key).
    from jobs.bundle import BundleError, verify_bundle

    pinned = Path(args.public_key).read_text() if args.public_key else None
    data = Path(args.file).read_bytes()
    try:
        report = verify_bundle(data, pinned, args.allow_unsigned)
    except BundleError as err:
        print(f"bundle: BAD: {err}")
        return 1
    proofs = (f", {plural(report.proofs, 'Merkle proof')} verified"
              if report.proofs and report.heads else "")
    counts = (f"{plural(report.entries, 'entry', 'entries')} "
              f"{_seq_range(report.first_seq, report.last_seq)}, "
              f"{plural(report.checkpoints, 'signed checkpoint')}, "
              + (f"{plural(report.heads, 'signed head')}"
                 f"{' (Merkle roots recomputed)' if report.roots_checked else ''}"
                 f"{proofs}, " if report.heads else "")
              + f"head {report.head}")
    if report.key_id is None:
        print(f"bundle: ok (UNSIGNED: hash chain and digest only, no signature checked): "
              f"{counts}")
    elif pinned:
        print(f"bundle: ok: {counts}, signed by the pinned key {report.key_id}")
    else:
        print(f"bundle: ok (signature self-consistent only: signer not pinned; pass "
              f"--public-key): {counts}, signed by key {report.key_id} named in the bundle")
    return 0


def _seq_range(first: int | None, last: int | None) -> str:
    return "(none)" if first is None else f"(seq {first}..{last})"


@command("import-shipments")
def import_shipments_command(args: argparse.Namespace) -> int:
    from jobs.shipments import ShipmentFeedError, check_unshipped, import_feed
    from ledger.bootstrap import open_ledger

    settings = get_settings()
    path = Path(args.file)
    data = path.read_bytes()  # a missing file is an error before the database is opened
    ledger = open_ledger(settings)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty:
            print(f"\rimporting shipments: {done}/{total} rows", end="", file=sys.stderr,
                  flush=True)

    try:
        summary = import_feed(ledger, data, path.name, progress)
    except ShipmentFeedError as err:
        print(f"error: {path.name}: {err}; nothing imported", file=sys.stderr)
        return 2
    if tty:
        print(file=sys.stderr)
    if summary.already_imported:
        print(f"{path.name}: already imported (import {summary.import_id}); nothing changed")
        return 0
    unshipped = check_unshipped(ledger, settings.shipment_deadline_days)
    print(f"{path.name}: import {summary.import_id}: {plural(summary.rows, 'row')}, "
          f"{plural(summary.new_findings, 'new finding')}, "
          f"{plural(unshipped, 'new not_shipped finding')}")
    return 0


def add_parsers(sub: Any) -> None:
    from jobs.registry import JOBS

    p = sub.add_parser("jobs", help="run the job scheduler (production), or one job now",
                       description="Without an action: run the job scheduler until stopped "
                       "(one per deployment is enough; a leader lock keeps one run per period).")
    jobs_sub = p.add_subparsers(dest="jobs_action", metavar="ACTION")
    run = jobs_sub.add_parser("run", help="run one job now, recorded like a scheduled run")
    run.add_argument("job", choices=sorted(JOBS), help="one of: " + ", ".join(sorted(JOBS)))
    run.add_argument("--repair", action="store_true",
                     help="reconcile: bring drifted bucket rows back to the entries")
    run.add_argument("--full", action="store_true",
                     help="verify_chain: from genesis; cache_rebuild: invalidate every answer")
    runs = jobs_sub.add_parser("runs", help="list recorded job runs, newest first")
    runs.add_argument("--job", default=None, help="only this job's runs")
    runs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    findings = jobs_sub.add_parser("findings", help="list findings, newest first")
    findings.add_argument("--kind", default=None,
                          help="only findings of this kind (e.g. not_shipped)")
    findings.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")

    p = sub.add_parser("signing-key", help="create an Ed25519 signing key (PEM)")
    p.add_argument("path", help="where to write the private key (refused if it exists)")

    p = sub.add_parser("export", help="write an audit bundle: entries, checkpoints, key")
    p.add_argument("--since", type=int, default=1, help="first seq to export (default 1)")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    p.add_argument("--unsigned", action="store_true", help="no signing key: digest only")
    p.add_argument("--format", choices=("bundle", "csv"), default="bundle",
                   help="bundle (default): the signed audit bundle; csv: entries as CSV "
                        "with a header row (--out - for stdout), filtered as below")
    p.add_argument("--country", default=None, help="csv: only entries to this country")
    p.add_argument("--operator-id", default=None, help="csv: only this operator's entries")
    p.add_argument("--consignee-id", default=None, help="csv: only this consignee's entries")
    p.add_argument("--kind", default=None,
                   help="csv: only entries of this kind (hold, commit, release, ...)")

    p = sub.add_parser("verify-bundle", help="check a bundle offline; non-zero when bad")
    p.add_argument("file", help="the bundle, as `ledger export` wrote it")
    p.add_argument("--public-key", default=None, help="PEM file of the key you trust")
    p.add_argument("--allow-unsigned", action="store_true",
                   help="accept a bundle without a signature (chain and digest still checked)")

    p = sub.add_parser("import-shipments", help="import a shipment feed (CSV or JSON lines)")
    p.add_argument("file", help="the feed file; the same content twice is imported once")


EXTENSIONS.append(add_parsers)
