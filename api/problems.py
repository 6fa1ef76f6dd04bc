"""Every error answer is RFC 9457 problem+json with a stable `type` URI per kind.

The ledger raises named outcomes (ledger.errors); this module is the one
place that turns them, and Litestar's own HTTP exceptions, into statuses and
problem bodies. Nothing here ever echoes a stack trace: unexpected errors
answer a generic 500 and are logged (Litestar's log_exceptions="always").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from api.schemas import ProblemOut, ViolationOut
from ledger.errors import (
    ChainBroken,
    Conflict,
    IdempotencyMismatch,
    InvalidInput,
    InvariantBroken,
    LedgerError,
    NotFound,
    OutcomeUnknown,
    Unavailable,
)
from ledger.policy import PolicyInputError, UnknownCountryError
from ledger.policy.types import RULE_CONSTRAINTS, Violation
from ledger.service import DB_FAULTS  # unreachable database: 503; other DB errors are 500s

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://tpp-ledger.dev/problems/"
MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_UNAVAILABLE = 2  # seconds: a pool reconnects well within this

# Status -> (type slug, title) for statuses that are not a ledger outcome.
HTTP_KINDS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Missing or unknown API key"),
    403: ("forbidden", "Outside this key's role or scope"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("body-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-input", "Invalid input"),
    429: ("too-many-requests", "Too many requests"),
    500: ("internal-error", "Internal error"),
    503: ("unavailable", "Service unavailable"),
}
MSGSPEC_PATH = re.compile(r"at `\$\.?([^`]*)`")
MSGSPEC_MISSING = re.compile(r"missing required field `([^`]*)`")


class QuotaExceeded(Exception):
    """A reservation (or line) denied by the policy: 409 with the violations. Answered as
    `quota-exceeded` when a cap binds, else as `not-permitted` (a licence is missing, or
    no path allows the line): lacking a licence is never reported as an overflow."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        super().__init__("quota exceeded")
        self.violations = list(violations)


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many requests")
        self.retry_after = retry_after


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug.replace("_", "-")


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response[ProblemOut]:
    body = ProblemOut(type=problem_type(slug), title=title, status=status, detail=detail,
                      **extensions)
    return Response(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def field_of_message(message: str) -> str | None:
    """The field a msgspec message names ("... - at `$.lines[0].tpp`") as `lines[0].tpp`;
    for a missing field, the missing one itself (`lines[0].tpp`, not `lines[0]`)."""
    match = MSGSPEC_PATH.search(message)
    where = match.group(1) if match else None
    missing = MSGSPEC_MISSING.search(message)
    if missing:
        return f"{where}.{missing.group(1)}" if where else missing.group(1)
    return where


def _ledger_problem(exc: LedgerError) -> Response[ProblemOut]:
    if isinstance(exc, InvalidInput):
        return problem(422, "invalid-input", "Invalid input", exc.detail, field=exc.field)
    if isinstance(exc, IdempotencyMismatch):
        return problem(422, "idempotency-key-reused", "Idempotency-Key reused", exc.detail,
                       field="Idempotency-Key")
    if isinstance(exc, NotFound):
        return problem(404, "not-found", "Not found", exc.detail)
    if isinstance(exc, Conflict):
        return problem(409, exc.code, "Conflict with the reservation's state", exc.detail,
                       code=exc.code, reservation_status=exc.extra.get("status"))
    if isinstance(exc, ChainBroken):
        return problem(503, "chain-broken", "Chain broken", f"{exc.detail}; nothing was "
                       "written, and writes are refused until an operator has checked the "
                       "database (see the README's operations section)", code=exc.code)
    if isinstance(exc, OutcomeUnknown):
        return problem(503, "unavailable", "Writer unavailable", exc.detail,
                       headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
    if isinstance(exc, Unavailable):
        return problem(503, "unavailable", "Database unavailable", "the database did not "
                       "answer; nothing was written, retry shortly",
                       headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})
    if isinstance(exc, InvariantBroken):
        log.error("invariant guard refused a decision: %s", exc.detail)
        return problem(500, "invariant-broken", "Internal error", "the ledger refused an "
                       "inconsistent decision; nothing was written")
    return problem(500, "internal-error", "Internal error", "unexpected ledger outcome")


def _http_problem(exc: HTTPException) -> Response[ProblemOut]:
    status = exc.status_code
    slug, title = HTTP_KINDS.get(status, ("http-error", "HTTP error"))
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException) or status == 400:
        # Malformed input is 422 in this API, whatever layer noticed it.
        field = None
        for item in exc.extra if isinstance(exc.extra, list) else []:
            if isinstance(item, dict) and item.get("key"):
                field = str(item["key"])
                break
        detail = exc.detail if not field else f"{exc.detail}: {field}"
        return problem(422, "invalid-input", "Invalid input", detail, field=field)
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="tpp-ledger"')
    if isinstance(exc, PermissionDeniedException) and not exc.detail:
        exc.detail = "outside this key's role or scope"
    return problem(status, slug, title, exc.detail or title, headers=headers or None)


def _denial(violations: Sequence[Violation]) -> Response[ProblemOut]:
    capped = any(v.constraint not in RULE_CONSTRAINTS for v in violations)
    slug, title = (("quota-exceeded", "Quota exceeded") if capped
                   else ("not-permitted", "Not permitted"))
    first = violations[0] if violations else None
    detail = "nothing was held for any line"
    if first is not None and first.reason:
        more = len(violations) - 1
        detail = (f"line {first.line}: {first.reason}"
                  + (f" (and {more} more)" if more else "") + f"; {detail}")
    return problem(409, slug, title, detail,
                   violations=[ViolationOut(**asdict(v)) for v in violations])


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[ProblemOut]:
    """The app's one exception handler: every error becomes problem+json."""
    if isinstance(exc, QuotaExceeded):
        return _denial(exc.violations)
    if isinstance(exc, Throttled):
        return problem(429, "too-many-requests", "Too many requests",
                       "this API key is over its request rate; retry later",
                       headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, LedgerError):
        return _ledger_problem(exc)
    if isinstance(exc, (PolicyInputError, UnknownCountryError)):
        return problem(422, "invalid-input", "Invalid input", str(exc))
    if isinstance(exc, DB_FAULTS):
        return _ledger_problem(Unavailable(type(exc).__name__))
    if isinstance(exc, HTTPException):
        return _http_problem(exc)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "internal-error", "Internal error",
                   "the service hit an unexpected fault; it has been logged")
