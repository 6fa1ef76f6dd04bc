"""Named outcomes of ledger operations that did not succeed.

Each carries a stable `code`; the API maps classes to HTTP statuses and codes
to problem `type` URIs. Messages are for people; codes are for programs.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    code = "ledger_error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickles whatever the subclass's __init__ takes (Conflict's code comes first):
        # the writer process (ledger.writer_process) sends errors back as they are.
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[LedgerError], args: tuple[Any, ...],
             state: dict[str, Any]) -> LedgerError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class InvalidInput(LedgerError):
    """Malformed or unresolvable input: nothing was decided or written."""

    code = "invalid_input"

    def __init__(self, detail: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail, field=field, **extra)
        self.field = field


class NotFound(LedgerError):
    code = "not_found"


class Conflict(LedgerError):
    """The operation does not fit the current state (expired, already_released, ...)."""

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.code = code


class IdempotencyMismatch(LedgerError):
    """The idempotency key was used before with a different request."""

    code = "idempotency_key_reused"


class Unavailable(LedgerError):
    """The database did not answer; nothing was written."""

    code = "unavailable"


class OutcomeUnknown(Unavailable):
    """The writer process went away with the command in flight: it may or may not have
    been committed. Retrying with the same idempotency key answers it either way."""

    code = "unavailable"


class InvariantBroken(LedgerError):
    """A guard inside the transaction caught a decision that would break a cap.

    This means a bug in the policy engine; the transaction is rolled back.
    """

    code = "invariant_broken"


class ChainBroken(Unavailable):
    """A write found the chain inconsistent (an entry past the head, the head not
    matching the last entry, or the head below the last signed head): the database
    was changed outside the ledger. Nothing is written until an operator has looked
    (README, operations: restoring from a backup)."""

    code = "chain_broken"

    def __init__(self, detail: str, seq: int | None = None) -> None:
        super().__init__(detail, seq=seq)
        self.seq = seq
