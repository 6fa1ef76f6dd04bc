"""Python client for the TPP quota ledger's HTTP API (sync and async, on httpx).

- every write carries an Idempotency-Key (a uuid4 unless you give one), the same
  on every retry, so a retried reservation never holds twice;
- 503 and 429 are retried honouring Retry-After, within `RetryPolicy` bounds
  (attempts and total time);
- cursor-paged lists are iterators (async iterators) that fetch page by page;
- every error answer raises a typed `LedgerProblem` carrying the problem details
  (denials: `.violations`, typed).
"""

from ledger_client._async import AsyncLedgerClient
from ledger_client._core import NO_RETRY, BatchResult, Call, Page, RetryPolicy, line
from ledger_client._sync import LedgerClient
from ledger_client.errors import (
    BodyTooLarge,
    Conflict,
    Denied,
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    LedgerProblem,
    NotFound,
    NotPermitted,
    QuotaExceeded,
    ServerError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Violation,
)

__all__ = [
    "NO_RETRY",
    "AsyncLedgerClient",
    "BatchResult",
    "BodyTooLarge",
    "Call",
    "Conflict",
    "Denied",
    "Forbidden",
    "IdempotencyKeyReused",
    "InvalidInput",
    "LedgerClient",
    "LedgerProblem",
    "NotFound",
    "NotPermitted",
    "Page",
    "QuotaExceeded",
    "RetryPolicy",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "Violation",
    "line",
]
