"""Shipment feeds: `ledger import-shipments FILE` and the scheduled inbox watch.

A feed is CSV (with a header) or JSON lines, one shipment per row:
reservation_id, chip, quantity, ship_date (YYYY-MM-DD), destination, consignee.

Guarantees:
- idempotent: a file is identified by the SHA-256 of its bytes; the same
  content imported twice (or by two runners at once) changes nothing;
- all or nothing: a malformed row rejects the whole file, naming the row,
  and nothing is written;
- rows, their import record and their findings commit in one transaction.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from jobs.context import JobContext, JobResult
from jobs.shipment_matching import find_unshipped, match_reservations
from ledger.service import Ledger
from ledger.store.job_models import Shipment, ShipmentImport

SHIPMENT = Shipment.__table__  # type: ignore[attr-defined]
IMPORT = ShipmentImport.__table__  # type: ignore[attr-defined]
FEED_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")
BATCH = 500
Progress = Callable[[int, int], None]


class ShipmentFeedError(ValueError):
    """A feed that cannot be imported; names the row."""


@dataclass
class ImportSummary:
    import_id: int
    rows: int
    new_findings: int
    already_imported: bool


def _text(row: dict[str, Any], name: str, number: int, *aliases: str) -> str:
    for key in (name, *aliases):
        value = row.get(key)
        if value not in (None, ""):
            return str(value).strip()
    raise ShipmentFeedError(f"row {number}: missing {name}")


def parse_feed(
    data: bytes, name: str, chip_tpp: Callable[[str], int | None]
) -> list[dict[str, Any]]:
    """Rows as dicts ready for the shipment table; raises ShipmentFeedError naming a bad row."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ShipmentFeedError(f"not UTF-8: {exc}") from None
    is_json = name.endswith((".jsonl", ".ndjson", ".json")) or (
        not name.endswith(".csv") and text.lstrip().startswith("{"))
    raw: list[tuple[int, dict[str, Any]]] = []
    if is_json:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ShipmentFeedError(f"row {number}: not JSON ({exc})") from None
            if not isinstance(doc, dict):
                raise ShipmentFeedError(f"row {number}: not an object")
            raw.append((number, doc))
    else:
        # Row numbers count the header as row 1, as a spreadsheet shows them.
        raw = list(enumerate(csv.DictReader(io.StringIO(text)), start=2))
    rows = []
    for number, doc in raw:
        quantity_text = _text(doc, "quantity", number)
        try:
            quantity = int(quantity_text)
        except ValueError:
            raise ShipmentFeedError(f"row {number}: quantity {quantity_text!r} is not an integer"
                                    ) from None
        if quantity <= 0 or isinstance(doc.get("quantity"), bool | float):
            raise ShipmentFeedError(f"row {number}: quantity must be a positive integer")
        day_text = _text(doc, "ship_date", number)
        try:
            ship_date = date.fromisoformat(day_text)
        except ValueError:
            raise ShipmentFeedError(f"row {number}: ship_date {day_text!r} is not YYYY-MM-DD"
                                    ) from None
        chip = _text(doc, "chip", number)
        per_chip = chip_tpp(chip)
        rows.append({
            "row_no": number,
            "reservation_id": _text(doc, "reservation_id", number)[:40],
            "chip": chip[:32],
            "quantity": quantity,
            "tpp": None if per_chip is None else per_chip * quantity,
            "ship_date": ship_date,
            "destination": _text(doc, "destination", number, "destination_country").upper()[:2],
            "consignee_id": _text(doc, "consignee", number, "consignee_id")[:64],
        })
    return rows


def import_feed(ledger: Ledger, data: bytes, source: str, progress: Progress | None = None,
                run_id: int | None = None) -> ImportSummary:
    content_hash = hashlib.sha256(data).hexdigest()
    with Session(ledger.engine) as session:
        existing = session.execute(sa.select(IMPORT.c.id, IMPORT.c.rows)
                                   .where(IMPORT.c.content_hash == content_hash)).first()
    if existing is not None:
        return ImportSummary(existing.id, existing.rows, 0, already_imported=True)
    rows = parse_feed(data, source, ledger.rule_set.chip_tpp)
    now = ledger.clock.now()
    try:
        with Session(ledger.write_engine) as session, session.begin():
            import_id = int(session.execute(
                sa.insert(IMPORT).values(content_hash=content_hash, source=source[-500:],
                                         imported_at=now, rows=len(rows))
                .returning(IMPORT.c.id)).scalar_one())
            for start in range(0, len(rows), BATCH):
                batch = rows[start:start + BATCH]
                session.execute(sa.insert(SHIPMENT), [{**r, "import_id": import_id}
                                                      for r in batch])
                if progress is not None:
                    progress(start + len(batch), len(rows))
            found = match_reservations(session, (r["reservation_id"] for r in rows), now, run_id)
    except sa_exc.IntegrityError:
        # Another runner imported the same content between our check and insert.
        with Session(ledger.engine) as session:
            row = session.execute(sa.select(IMPORT.c.id, IMPORT.c.rows)
                                  .where(IMPORT.c.content_hash == content_hash)).one()
        return ImportSummary(row.id, row.rows, 0, already_imported=True)
    return ImportSummary(import_id, len(rows), found, already_imported=False)


def check_unshipped(ledger: Ledger, deadline_days: int, run_id: int | None = None) -> int:
    with Session(ledger.write_engine) as session, session.begin():
        return find_unshipped(session, ledger.clock.now(), deadline_days, run_id)


def watch_inbox(ctx: JobContext) -> JobResult:
    """Imports every feed file in LEDGER_SHIPMENT_INBOX (already-seen content is a no-op),
    then reports committed reservations past the shipping deadline."""
    inbox = ctx.settings.shipment_inbox
    files = imported = rows = found = 0
    errors: list[str] = []
    if inbox:
        for path in sorted(Path(inbox).iterdir()):
            if not path.is_file() or path.suffix.lower() not in FEED_SUFFIXES:
                continue
            files += 1
            try:
                summary = import_feed(ctx.ledger, path.read_bytes(), path.name, run_id=ctx.run_id)
            except ShipmentFeedError as exc:
                errors.append(f"{path.name}: {exc}")
                continue
            if not summary.already_imported:
                imported += 1
                rows += summary.rows
                found += summary.new_findings
    unshipped = check_unshipped(ctx.ledger, ctx.settings.shipment_deadline_days, ctx.run_id)
    figures = {"inbox": inbox, "files": files, "imported": imported, "rows": rows,
               "new_findings": found + unshipped, "not_shipped_new": unshipped}
    if errors:
        return JobResult.failed(**figures, errors=errors[:20])
    return JobResult.ok(**figures)
