"""What the sync and async clients share: request building, retry decisions, decoding.

Each public call builds one `Call` (method, path, query, body, headers) before the
first attempt, so every retry of a write carries the same Idempotency-Key.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx

from ledger_client.errors import LedgerProblem, parse_retry_after, problem_from

RETRY_STATUSES = frozenset({429, 503})
DEFAULT_TIMEOUT = 10.0
USER_AGENT = "tpp-ledger-client/0.1"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries before it raises.

    Retried: 503 and 429 (waiting what Retry-After says, in seconds or as a date)
    and transport errors (connection refused or reset, timeouts: exponential
    backoff from `backoff`). Every call is safe to repeat: writes carry an
    Idempotency-Key fixed before the first attempt (reservations, batch items),
    and commit, release, PUTs and key revocation are idempotent by contract.
    A wait that would end past `max_total_seconds` from the first attempt is not
    taken: the last answer is raised at once instead.
    """

    max_attempts: int = 5
    max_total_seconds: float = 30.0
    backoff: float = 0.25  # first wait without Retry-After; doubles each time
    max_backoff: float = 5.0

    def wait_before_next(self, attempt: int, started: float, retry_after: float | None,
                         now: float | None = None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        wait = (retry_after if retry_after is not None
                else min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
        elapsed = (time.monotonic() if now is None else now) - started
        if elapsed + wait > self.max_total_seconds:
            return None
        return wait


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """One page of a cursor-paged list."""

    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class BatchResult:
    """One reservation's own answer inside a batch."""

    index: int
    status: int
    idempotency_key: str
    reservation: dict[str, Any] | None = None
    error: LedgerProblem | None = None

    @property
    def ok(self) -> bool:
        return self.reservation is not None


def line(destination_country: str, operator_id: str | None = None,
         consignee_id: str | None = None, *, chip: str | None = None,
         quantity: int | None = None, tpp: int | None = None,
         license_id: str | None = None) -> dict[str, Any]:
    """A reservation line: `chip` + `quantity`, or `tpp`."""
    out: dict[str, Any] = {"destination_country": destination_country,
                           "operator_id": operator_id, "consignee_id": consignee_id}
    if chip is not None:
        out["chip"] = chip
    if quantity is not None:
        out["quantity"] = quantity
    if tpp is not None:
        out["tpp"] = tpp
    if license_id is not None:
        out["license_id"] = license_id
    return out


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def query_value(value: Any) -> str:
    if isinstance(value, datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return str(value.isoformat())
    return str(value)


def params(**values: Any) -> dict[str, str]:
    return {k: query_value(v) for k, v in values.items() if v is not None}


def date_value(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else value


def header_dict(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items()}


def decode(response: httpx.Response) -> Any:
    """The JSON body of a 2xx answer (None for 204); raises the typed problem otherwise."""
    if response.is_success:
        if response.status_code == 204 or not response.content:
            return None
        return response.json()
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    raise problem_from(response.status_code, body, header_dict(response))


def retry_after_of(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"))


def reserve_body(lines: Sequence[Mapping[str, Any]], hold_seconds: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"lines": [dict(x) for x in lines]}
    if hold_seconds is not None:
        body["hold_seconds"] = hold_seconds
    return body


def batch_items(reservations: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Batch items, each given its own Idempotency-Key (uuid4) unless it has one."""
    items = []
    for item in reservations:
        out = dict(item)
        out.setdefault("idempotency_key", new_idempotency_key())
        items.append(out)
    return items


def batch_results(items: list[dict[str, Any]], body: dict[str, Any]) -> list[BatchResult]:
    results = []
    for result in body["results"]:
        index = int(result["index"])
        status = int(result["status"])
        problem = result.get("problem")
        results.append(BatchResult(
            index=index, status=status, idempotency_key=items[index]["idempotency_key"],
            reservation=result.get("reservation"),
            error=problem_from(status, problem) if problem is not None else None,
        ))
    return results


class CallBuilder:
    """Every operation of the API as a `Call`; the clients only send them."""

    # -- reference data ---------------------------------------------------------

    @staticmethod
    def put_operator(operator_id: str, body: Mapping[str, Any]) -> Call:
        return Call("PUT", f"/v1/operators/{operator_id}", json=dict(body))

    @staticmethod
    def put_consignee(consignee_id: str, body: Mapping[str, Any]) -> Call:
        return Call("PUT", f"/v1/consignees/{consignee_id}", json=dict(body))

    @staticmethod
    def put_license(license_id: str, body: Mapping[str, Any]) -> Call:
        body = dict(body)
        for name in ("valid_from", "valid_to"):
            if isinstance(body.get(name), date):
                body[name] = date_value(body[name])
        return Call("PUT", f"/v1/licenses/{license_id}", json=body)

    @staticmethod
    def get(path: str, **query: Any) -> Call:
        return Call("GET", path, params=params(**query))

    # -- reservations -----------------------------------------------------------

    @staticmethod
    def reserve(lines: Sequence[Mapping[str, Any]], hold_seconds: int | None,
                idempotency_key: str | None) -> Call:
        key = idempotency_key or new_idempotency_key()
        return Call("POST", "/v1/reservations", json=reserve_body(lines, hold_seconds),
                    headers={"Idempotency-Key": key})

    @staticmethod
    def evaluate(lines: Sequence[Mapping[str, Any]], hold_seconds: int | None) -> Call:
        return Call("POST", "/v1/evaluate", json=reserve_body(lines, hold_seconds))

    @staticmethod
    def transition(reservation_id: str, action: str) -> Call:
        return Call("POST", f"/v1/reservations/{reservation_id}/{action}")

    @staticmethod
    def batch(items: list[dict[str, Any]]) -> Call:
        return Call("POST", "/v1/reservations:batch", json={"reservations": items})

    @staticmethod
    def revoke_key(key_id: str) -> Call:
        return Call("DELETE", f"/v1/keys/{key_id}")
