"""Importing a list version: parsed whole, stored as a dated version, indexed, and
every party rescreened against it, in one write transaction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.chain import format_time
from ledger.screening.lists import parse_list
from ledger.screening.screen import (
    ENTRY,
    ENTRY_KEY,
    VERSION,
    current_version,
    lock_screening,
    rescreen_everyone,
)
from ledger.store.engine import writer

BATCH = 5000


@dataclass(frozen=True)
class ImportResult:
    version_id: int
    sha256: str
    entries: int
    imported_at: str
    changed: bool  # False: the same file as the version in force; nothing changed
    parties: int = 0
    matches: int = 0
    findings: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_list(engine: sa.Engine, content: bytes, source: str, actor: str,
                now: datetime) -> ImportResult:
    """Stores `content` as the list version in force from `now` and rescreens every
    party. The same file as the version in force changes nothing. Raises ListError
    (naming the row) for a malformed file, before anything is written."""
    parsed = parse_list(content)
    with Session(writer(engine)) as session, session.begin():
        lock_screening(session)
        latest = current_version(session)
        if latest is not None and latest.sha256 == parsed.sha256:
            return ImportResult(latest.id, latest.sha256, latest.entries,
                                format_time(latest.imported_at), changed=False)
        if latest is not None and latest.imported_at > now:
            now = latest.imported_at  # versions stay in import order
        version_id = session.execute(sa.insert(VERSION).values(
            sha256=parsed.sha256, imported_at=now, source=source[:500],
            entries=len(parsed.entries), actor=actor[:64]).returning(VERSION.c.id)).scalar_one()
        rows = [{"version_id": version_id, "entry_id": e.entry_id, "list_name": e.list_name,
                 "name": e.name[:500], "fingerprint": e.fingerprint, "data": e.data}
                for e in parsed.entries]
        for i in range(0, len(rows), BATCH):
            session.execute(sa.insert(ENTRY), rows[i:i + BATCH])
        # Only the version in force is indexed; older versions keep their entries.
        session.execute(sa.delete(ENTRY_KEY))
        keys = [{"version_id": version_id, "entry_id": e.entry_id, "key_type": t,
                 "key": k[:500]} for e in parsed.entries for t, k in e.key_pairs()]
        for i in range(0, len(keys), BATCH):
            session.execute(sa.insert(ENTRY_KEY), keys[i:i + BATCH])
        figures = rescreen_everyone(session, version_id, now)
    return ImportResult(version_id, parsed.sha256, len(parsed.entries), format_time(now),
                        changed=True, **figures)


def version_at(engine: sa.Engine, at: datetime | None = None) -> dict[str, Any] | None:
    """The list version in force at `at` (latest imported at or before it), or None."""
    with Session(engine) as session:
        row = current_version(session, at)
    if row is None:
        return None
    return {"version_id": row.id, "sha256": row.sha256, "imported_at": format_time(
        row.imported_at), "source": row.source, "entries": row.entries, "actor": row.actor}


def list_versions(engine: sa.Engine) -> list[dict[str, Any]]:
    with Session(engine) as session:
        rows = session.execute(sa.select(VERSION).order_by(VERSION.c.imported_at,
                                                            VERSION.c.id)).all()
    return [{"version_id": r.id, "sha256": r.sha256, "imported_at": format_time(r.imported_at),
             "source": r.source, "entries": r.entries, "actor": r.actor} for r in rows]
