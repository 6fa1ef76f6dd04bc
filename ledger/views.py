"""Commands the service accepts and the views it returns (never table models)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.chain import format_time
from ledger.policy.types import Violation

MAX_HOLD_SECONDS = 30 * 24 * 3600
DEFAULT_HOLD_SECONDS = 86400


@dataclass(frozen=True)
class LineInput:
    """One requested line as the client sent it (chip + quantity, or raw tpp)."""

    destination_country: str
    operator_id: str
    consignee_id: str
    chip: str | None = None
    quantity: int | None = None
    tpp: int | None = None
    license_id: str | None = None

    def values(self) -> list[str | int | None]:
        return [self.destination_country, self.operator_id, self.consignee_id, self.chip,
                self.quantity, self.tpp, self.license_id]


@dataclass(frozen=True)
class ReserveCommand:
    actor: str
    lines: tuple[LineInput, ...]
    hold_seconds: int = DEFAULT_HOLD_SECONDS
    idempotency_key: str | None = None

    def request_hash(self) -> str:
        """Identity of the request body, to tell a replay from a reused key."""
        # Each line's fields in declaration order (what dataclasses.astuple gives, without
        # its deep copy): as exact as dicts, and several times cheaper. Stored hashes
        # depend on this form; tests pin it.
        doc = [self.hold_seconds, [line.values() for line in self.lines]]
        raw = json.dumps(doc, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class CommitCommand:
    actor: str
    reservation_id: str


@dataclass(frozen=True)
class ReleaseCommand:
    actor: str
    reservation_id: str


@dataclass(frozen=True)
class ReverseCommand:
    actor: str
    reservation_id: str
    reason: str


Command = ReserveCommand | CommitCommand | ReleaseCommand | ReverseCommand


@dataclass(frozen=True)
class LineView:
    line: int
    destination_country: str
    operator_id: str
    consignee_id: str
    chip: str | None
    quantity: int | None
    license_id: str | None
    tpp: int
    path: str


@dataclass(frozen=True)
class ReservationView:
    id: str
    status: str  # one of ledger.books.STATUSES
    owner: str
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None
    reversed_at: datetime | None
    rule_set: str
    rule_set_version: str
    lines: tuple[LineView, ...]

    @property
    def tpp(self) -> int:
        return sum(line.tpp for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        def t(v: datetime | None) -> str | None:
            return format_time(v) if v is not None else None

        return {
            "id": self.id,
            "status": self.status,
            "owner": self.owner,
            "created_at": t(self.created_at),
            "expires_at": t(self.expires_at),
            "resolved_at": t(self.resolved_at),
            "reversed_at": t(self.reversed_at),
            "rule_set": self.rule_set,
            "rule_set_version": self.rule_set_version,
            "tpp": self.tpp,
            "lines": [line.__dict__.copy() for line in self.lines],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ReservationView:
        def t(v: str | None) -> datetime | None:
            return datetime.fromisoformat(v) if v is not None else None

        created, expires = t(doc["created_at"]), t(doc["expires_at"])
        assert created is not None and expires is not None
        return cls(
            id=doc["id"],
            status=doc["status"],
            owner=doc["owner"],
            created_at=created,
            expires_at=expires,
            resolved_at=t(doc["resolved_at"]),
            reversed_at=t(doc["reversed_at"]),
            rule_set=doc["rule_set"],
            rule_set_version=doc["rule_set_version"],
            lines=tuple(LineView(**line) for line in doc["lines"]),
        )


@dataclass(frozen=True)
class ReserveOutcome:
    """Either a held reservation or the violations that denied it (nothing held)."""

    reservation: ReservationView | None
    violations: tuple[Violation, ...] = ()
    replayed: bool = False

    @property
    def held(self) -> bool:
        return self.reservation is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reservation": self.reservation.to_dict() if self.reservation else None,
            "violations": [v.__dict__.copy() for v in self.violations],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any], replayed: bool) -> ReserveOutcome:
        res = doc["reservation"]
        return cls(
            reservation=ReservationView.from_dict(res) if res else None,
            violations=tuple(Violation(**v) for v in doc["violations"]),
            replayed=replayed,
        )
