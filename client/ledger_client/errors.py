"""Typed errors: every non-2xx answer of the ledger becomes one of these.

The service answers RFC 9457 problem+json; the exception keeps the whole body
(`.problem`) and exposes its standard members as attributes. The class is picked
by the problem `type` first (stable URIs under https://tpp-ledger.dev/problems/),
then by the HTTP status.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PROBLEM_BASE = "https://tpp-ledger.dev/problems/"


@dataclass(frozen=True)
class Violation:
    """Why one line of a reservation was denied."""

    line: int
    constraint: str  # a bucket kind (lpp, country_allocation, nveu, uveu, license) or a rule
    key: str
    cap: int
    used: int
    requested: int
    rule: str | None = None  # the rule-set step that produced it
    reason: str | None = None  # one sentence for a person

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Violation:
        return cls(
            line=int(data.get("line", 0)),
            constraint=str(data.get("constraint", "")),
            key=str(data.get("key", "")),
            cap=int(data.get("cap", 0)),
            used=int(data.get("used", 0)),
            requested=int(data.get("requested", 0)),
            rule=data.get("rule"),
            reason=data.get("reason"),
        )


class LedgerProblem(Exception):
    """A problem+json answer (or any other non-2xx answer) from the ledger."""

    def __init__(self, status: int, problem: dict[str, Any],
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.problem = problem
        self.headers = headers or {}
        self.type: str = str(problem.get("type") or "about:blank")
        self.title: str = str(problem.get("title") or f"HTTP {status}")
        self.detail: str | None = problem.get("detail")
        super().__init__(f"{status} {self.title}" + (f": {self.detail}" if self.detail else ""))

    @property
    def slug(self) -> str:
        """The problem type without its base URI (`quota-exceeded`)."""
        return self.type.removeprefix(PROBLEM_BASE)


class InvalidInput(LedgerProblem):
    """422: malformed input; `.field` names the offending field when the service knows it."""

    @property
    def field(self) -> str | None:
        value = self.problem.get("field")
        return None if value is None else str(value)


class IdempotencyKeyReused(InvalidInput):
    """422: the Idempotency-Key was used before with a different body."""


class Unauthorized(LedgerProblem):
    """401: missing, unknown, revoked or expired API key."""


class Forbidden(LedgerProblem):
    """403: a known key outside its role or scope."""


class NotFound(LedgerProblem):
    """404."""


class Conflict(LedgerProblem):
    """409: the reservation's state forbids the command (expired, already committed, ...)."""

    @property
    def code(self) -> str | None:
        value = self.problem.get("code")
        return None if value is None else str(value)


class Denied(Conflict):
    """409: the policy denied a reservation; nothing was held for any line."""

    @property
    def violations(self) -> list[Violation]:
        return [Violation.from_dict(v) for v in self.problem.get("violations") or []]


class QuotaExceeded(Denied):
    """409 `quota-exceeded`: a cap binds."""


class NotPermitted(Denied):
    """409 `not-permitted`: no cap binds, but the line is not allowed (licence required,
    Tier 3, prohibited, screening)."""


class BodyTooLarge(LedgerProblem):
    """413."""


class _RetryAfter(LedgerProblem):
    @property
    def retry_after(self) -> float | None:
        """Seconds the service asked us to wait (Retry-After), if it said."""
        return parse_retry_after(self.headers.get("retry-after"))


class TooManyRequests(_RetryAfter):
    """429: the key is over its request rate (after the client's own retries)."""


class Unavailable(_RetryAfter):
    """503: the database (or the service) is unavailable; nothing was written."""


class ServerError(LedgerProblem):
    """Any other 5xx."""


_BY_SLUG: dict[str, type[LedgerProblem]] = {
    "quota-exceeded": QuotaExceeded,
    "not-permitted": NotPermitted,
    "idempotency-key-reused": IdempotencyKeyReused,
    "invalid-input": InvalidInput,
}
_BY_STATUS: dict[int, type[LedgerProblem]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BodyTooLarge,
    422: InvalidInput,
    429: TooManyRequests,
    503: Unavailable,
}


def problem_class(status: int, problem: dict[str, Any]) -> type[LedgerProblem]:
    slug = str(problem.get("type") or "").removeprefix(PROBLEM_BASE)
    cls = _BY_SLUG.get(slug)
    if cls is not None and _BY_STATUS.get(status) in cls.__mro__:
        return cls
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else LedgerProblem


def problem_from(status: int, body: Any, headers: dict[str, str] | None = None) -> LedgerProblem:
    """The typed error for an answer (`body`: the decoded JSON, or anything else)."""
    problem: dict[str, Any] = body if isinstance(body, dict) else {}
    if not problem and isinstance(body, str) and body:
        problem = {"detail": body[:500]}
    problem.setdefault("status", status)
    return problem_class(status, problem)(status, problem, headers)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds, or an HTTP date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
