"""What a job gets when it runs, and what it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ledger.service import Ledger
from ledger.settings import Settings


@dataclass
class JobContext:
    ledger: Ledger
    settings: Settings
    run_id: int | None = None  # None when run outside the scheduler (CLI, tests)
    period: str | None = None
    # Renews the leader lock; a job that loops calls it between chunks and
    # stops when it returns False (another runner may have taken over).
    heartbeat: Callable[[], bool] = lambda: True
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"repair": True}

    @property
    def engine(self) -> sa.Engine:
        """For reads. Never write through it: see `write_engine`."""
        return self.ledger.engine

    @property
    def write_engine(self) -> sa.Engine:
        """For every transaction that may write: on SQLite it takes the write lock up
        front (BEGIN IMMEDIATE, with the busy timeout), so it waits for the API's and
        other jobs' writes instead of failing with "database is locked"."""
        return self.ledger.write_engine

    def now(self) -> datetime:
        return self.ledger.clock.now()


@dataclass
class JobResult:
    """outcome: ok | failed | skipped (nothing to do by configuration, e.g. no signing key)."""

    outcome: str
    figures: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, **figures: Any) -> JobResult:
        return cls("ok", figures)

    @classmethod
    def failed(cls, **figures: Any) -> JobResult:
        return cls("failed", figures)

    @classmethod
    def skipped(cls, reason: str) -> JobResult:
        return cls("skipped", {"reason": reason})


Job = Callable[[JobContext], JobResult]
