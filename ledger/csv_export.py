"""CSV forms of the history: entries and balances, with a header row and fixed columns.

Used by `GET /v1/entries.csv`, `GET /v1/balances.csv` and `ledger export --format csv`.
Rows are the JSON forms' items (`ledger.queries.entry_view`, `balances_as_of`) in the
same order; `draws` is the entry's draws as compact JSON in one cell. Entries are
read page by page through the keyset query (`LedgerReader.entries`), never the whole
table at once, and a walk stops at the chain head it saw when it began, so an export
is one consistent prefix of the history.

Text cells that a spreadsheet would take for a formula (starting with = + - @, a tab
or a carriage return: only free text such as a reversal's note can) are prefixed
with a single quote (OWASP, CSV injection).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from ledger.cursors import encode_seq
from ledger.queries import MAX_PAGE, EntryFilter, LedgerReader
from ledger.store.txn import ENTRY

ENTRY_COLUMNS = (
    "seq", "kind", "reservation_id", "line_no", "tpp", "at", "recorded_at", "country",
    "operator_id", "consignee_id", "path", "draws", "actor", "rule_set",
    "rule_set_version", "note", "hash", "prev_hash",
)
BALANCE_COLUMNS = ("as_of", "kind", "key", "period", "cap", "committed", "held", "available")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_text(rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return buffer.getvalue()


def header(columns: Sequence[str]) -> str:
    return csv_text([columns])


def entry_rows(items: Sequence[dict[str, Any]]) -> str:
    return csv_text([[item.get(c) for c in ENTRY_COLUMNS] for item in items])


def balance_rows(as_of: str, buckets: Sequence[dict[str, Any]]) -> str:
    return csv_text([[as_of, *(b.get(c) for c in BALANCE_COLUMNS[1:])] for b in buckets])


def head_seq(reader: LedgerReader) -> int:
    with reader.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(ENTRY.c.seq), 0)))
                   .scalar_one())


def entry_pages(reader: LedgerReader, filt: EntryFilter, *, after_seq: int = 0,
                upto_seq: int | None = None,
                page_size: int = MAX_PAGE) -> Iterator[list[dict[str, Any]]]:
    """Pages of entries (seq > `after_seq`, seq <= `upto_seq`: default the head now),
    one keyset query each; never more than one page in memory."""
    upto = head_seq(reader) if upto_seq is None else upto_seq
    cursor = encode_seq(after_seq) if after_seq else None
    while True:
        page = reader.entries(filt, cursor, page_size)
        items = [item for item in page.items if item["seq"] <= upto]
        if items:
            yield items
        if page.next_cursor is None or len(items) < len(page.items):
            return
        cursor = page.next_cursor


def write_entries_csv(reader: LedgerReader, filt: EntryFilter, out: Any, *,
                      after_seq: int = 0, page_size: int = MAX_PAGE) -> int:
    """Writes the header and every matching entry to the text stream `out`; the count."""
    out.write(header(ENTRY_COLUMNS))
    count = 0
    for items in entry_pages(reader, filt, after_seq=after_seq, page_size=page_size):
        out.write(entry_rows(items))
        count += len(items)
    return count
