"""Edges of the wire shared by route modules: strict bodies, times, documented errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from api.problems import MEDIA_TYPE, PROBLEM_BASE, field_of_message
from api.schemas import ProblemOut
from ledger.errors import InvalidInput

MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: 1,000 lines fit in a tenth of it

PROBLEM_DESCRIPTIONS = {
    401: "Missing or unknown API key",
    403: "Outside this key's role or scope",
    404: "Not found",
    409: "Denied by a cap, or the reservation's state forbids it",
    413: "Request body too large",
    422: "Malformed input; `field` names the culprit",
    429: "Over this key's request rate; see Retry-After",
    503: "Database unavailable; nothing written; see Retry-After",
}


# One real example per status. Litestar would otherwise generate random ones, which
# differ each time a document is built in one process (the checked-in copy could
# never be compared) and show clients nonsense.
PROBLEM_EXAMPLES: dict[int, dict[str, Any]] = {
    401: {"type": PROBLEM_BASE + "unauthorized", "title": "Unauthorized", "status": 401,
          "detail": "send Authorization: Bearer <API key>"},
    403: {"type": PROBLEM_BASE + "forbidden", "title": "Forbidden", "status": 403,
          "detail": "this key reads operator 'g42' only"},
    404: {"type": PROBLEM_BASE + "not-found", "title": "Not found", "status": 404,
          "detail": "no reservation 'res_0123'"},
    409: {"type": PROBLEM_BASE + "quota-exceeded", "title": "Quota exceeded", "status": 409,
          "detail": "line 0: the low-processing-performance exemption of consignee:sg-lab has "
                    "1,432 TPP left of 26,900,000 (26,898,568 used); the line asks for 15,832; "
                    "nothing was held for any line",
          "violations": [{"line": 0, "constraint": "lpp", "key": "consignee:sg-lab",
                          "cap": 26_900_000, "used": 26_898_568, "requested": 15_832,
                          "rule": "lpp", "reason": "the low-processing-performance exemption "
                          "of consignee:sg-lab has 1,432 TPP left of 26,900,000 (26,898,568 "
                          "used); the line asks for 15,832"}]},
    413: {"type": PROBLEM_BASE + "body-too-large", "title": "Request body too large",
          "status": 413, "detail": "bodies are limited to 1,048,576 bytes"},
    422: {"type": PROBLEM_BASE + "invalid-input", "title": "Invalid input", "status": 422,
          "detail": "unknown chip 'H900': lines[0].chip", "field": "lines[0].chip"},
    429: {"type": PROBLEM_BASE + "too-many-requests", "title": "Too many requests",
          "status": 429, "detail": "this API key is over its request rate; retry later"},
    503: {"type": PROBLEM_BASE + "unavailable", "title": "Service unavailable", "status": 503,
          "detail": "database unavailable: OperationalError"},
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem+json answers a route can give (plus 401/429/503)."""
    wanted = sorted({401, 429, 503, *statuses})
    return {
        status: ResponseSpec(
            data_container=ProblemOut,
            description=PROBLEM_DESCRIPTIONS.get(status, "Problem"),
            media_type=MEDIA_TYPE,
            generate_examples=False,
            examples=[Example(summary=PROBLEM_DESCRIPTIONS.get(status, "Problem"),
                              value=PROBLEM_EXAMPLES[status])]
            if status in PROBLEM_EXAMPLES else None,
        )
        for status in wanted
    }


def strict_body(
    model: type[Any], required_headers: tuple[str, ...] = ()
) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """A before_request hook decoding the body strictly before Litestar's lenient decode.

    Litestar converts leniently (1.0 or "5" would become an int); TPP figures
    must be JSON integers, so the body is checked here first, field by field.
    Required headers are checked here too, so their absence is a 422 naming them.
    """

    async def check(request: Request[Any, Any, Any]) -> None:
        for header in required_headers:
            if not request.headers.get(header):
                raise InvalidInput(f"the {header} header is required", field=header)
        raw = await request.body()
        try:
            msgspec.json.decode(raw, type=model, strict=True)
        except msgspec.ValidationError as exc:
            message = str(exc)
            raise InvalidInput(message, field=field_of_message(message) or "body") from exc
        except msgspec.DecodeError as exc:
            raise InvalidInput(f"the body is not valid JSON: {exc}", field="body") from exc
        if b"\\u0000" in raw or b"\x00" in raw:
            field = _nul_field(msgspec.json.decode(raw))
            if field is not None:
                raise InvalidInput("text may not contain NUL characters", field=field)

    return check


def _nul_field(value: Any, path: str = "") -> str | None:
    """Where a decoded body holds a NUL character (databases refuse them in text)."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_field(key, path) or _nul_field(item, f"{path}.{key}" if path else key)
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_field(item, f"{path}[{i}]")
            if found:
                return found
    return None


def utc_time(value: datetime | None, name: str) -> datetime | None:
    """A query time as aware UTC; a time without offset is taken as UTC."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise InvalidInput(f"{name} is out of range", field=name) from exc
