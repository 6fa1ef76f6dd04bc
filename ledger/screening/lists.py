"""Restricted-party lists as data: the Consolidated Screening List's CSV layout,
parsed and checked whole (a malformed row rejects the file, naming the row).

The published header is

    source, entity_number, type, programs, name, title, addresses,
    federal_register_notice, start_date, end_date, standard_order,
    license_requirement, license_policy, call_sign, vessel_type, gross_tonnage,
    gross_registered_tonnage, vessel_flag, vessel_owner, remarks, source_list_url,
    alt_names, citizenships, nationalities, places_of_birth, dates_of_birth,
    source_information_url, ids

A file is accepted when it has the columns screening needs (`REQUIRED`); any other
column is ignored. `;` separates several values in one cell (aliases, addresses).
One extension: an optional `officers` column (`;`-separated names of an entry's
directors or officers), which the published list does not carry but an analyst's
list may; the address-and-officer rule uses it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from ledger.screening.normalise import normalise_address, normalise_name, normalise_person

REQUIRED: Final = ("source", "entity_number", "name", "alt_names", "addresses")
# Columns kept with each entry (and hashed into its fingerprint) when present.
KEPT: Final = ("source", "entity_number", "type", "programs", "name", "title", "addresses",
               "federal_register_notice", "start_date", "end_date", "license_requirement",
               "license_policy", "remarks", "source_list_url", "alt_names", "citizenships",
               "nationalities", "ids", "officers")
MULTI: Final = frozenset({"programs", "addresses", "alt_names", "citizenships",
                          "nationalities", "ids", "officers"})
MAX_NAME: Final = 500
MAX_BYTES: Final = 64 * 1024 * 1024
_ENTRY_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ListError(ValueError):
    """The file is not a list we accept; the message names the row or the column."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


@dataclass(frozen=True)
class ListEntry:
    entry_id: str
    list_name: str  # the `source` cell
    name: str
    aliases: tuple[str, ...]
    addresses: tuple[str, ...]
    officers: tuple[str, ...]
    data: dict[str, Any] = field(compare=False)

    @property
    def fingerprint(self) -> str:
        raw = json.dumps(self.data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()

    def key_pairs(self) -> list[tuple[str, str]]:
        """(key_type, normalised key) pairs, without duplicates, in a stable order."""
        out: dict[tuple[str, str], None] = {}
        name = normalise_name(self.name)
        if name:
            out[("name", name)] = None
        for alias in self.aliases:
            key = normalise_name(alias)
            if key and key != name:
                out[("alias", key)] = None
        for address in self.addresses:
            key = normalise_address(address)
            if key:
                out[("address", key)] = None
        for officer in self.officers:
            key = normalise_person(officer)
            if key:
                out[("officer", key)] = None
        return list(out)


@dataclass(frozen=True)
class ParsedList:
    sha256: str
    entries: tuple[ListEntry, ...]


def _split(cell: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in cell.split(";") if v.strip())


def _fallback_id(source: str, name: str) -> str:
    return "csl-" + hashlib.sha256(f"{source}\x1f{name}".encode()).hexdigest()[:16]


def parse_list(content: bytes) -> ParsedList:
    """Parses and checks a whole file. Raises ListError naming the first bad row
    (row 1 is the first line after the header) or the missing columns."""
    if len(content) > MAX_BYTES:
        raise ListError(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    digest = hashlib.sha256(content).hexdigest()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ListError(f"the file is not UTF-8 (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ListError("the file is empty (no header)") from None
    except csv.Error as exc:
        raise ListError(f"header: {exc}") from None
    columns = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ListError("the header lacks the column(s) " + ", ".join(missing)
                        + " (the Consolidated Screening List's CSV layout)")
    index: dict[str, int] = {c: columns.index(c) for c in KEPT if c in columns}
    entries: list[ListEntry] = []
    seen: dict[str, int] = {}
    row_no = 0
    while True:
        row_no += 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ListError(f"row {row_no}: {exc}", row_no) from None
        if not any(c.strip() for c in cells):
            row_no -= 1  # blank lines are not rows
            continue
        entries.append(_entry(cells, len(columns), index, row_no, seen))
    return ParsedList(digest, tuple(entries))


def _entry(cells: list[str], width: int, index: dict[str, int], row_no: int,
           seen: dict[str, int]) -> ListEntry:
    def bad(why: str) -> ListError:
        return ListError(f"row {row_no}: {why}", row_no)

    if len(cells) != width:
        raise bad(f"{len(cells)} cells where the header has {width}")
    for cell in cells:
        if _CONTROL.search(cell):
            raise bad("a cell contains a control character")
    data: dict[str, Any] = {}
    for column, i in index.items():
        value = cells[i].strip()
        data[column] = list(_split(value)) if column in MULTI else value
    name, source = data["name"], data["source"]
    if not name:
        raise bad("name is empty")
    if len(name) > MAX_NAME:
        raise bad(f"name is longer than {MAX_NAME} characters")
    if not normalise_name(name):
        raise bad(f"name {name!r} has no letters or digits")
    if not source:
        raise bad("source is empty")
    if len(source) > 200:
        raise bad("source is longer than 200 characters")
    for column in ("start_date", "end_date"):
        value = str(data.get(column) or "")
        if value:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise bad(f"{column} {value!r} is not a date (YYYY-MM-DD)") from None
    number = data["entity_number"]
    if number and not _ENTRY_ID.match(number):
        raise bad(f"entity_number {number!r} is not an id (letters, digits, '.', '_', ':', "
                  "'/', '-'; at most 100)")
    entry_id = number or _fallback_id(source, name)
    if entry_id in seen:
        raise bad(f"entry {entry_id!r} repeats row {seen[entry_id]}")
    seen[entry_id] = row_no
    return ListEntry(
        entry_id=entry_id, list_name=source, name=name,
        aliases=tuple(data["alt_names"]), addresses=tuple(data["addresses"]),
        officers=tuple(data.get("officers", ())), data=data,
    )
