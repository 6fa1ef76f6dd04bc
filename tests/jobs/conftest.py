"""Helpers for the job tests: settings pointing at the test database, and a context."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.context import JobContext
from ledger.service import Ledger
from ledger.settings import Settings


@pytest.fixture
def make_settings(db_url: str):  # type: ignore[no-untyped-def]
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": db_url, "redis_url": None}
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def make_ctx(ledger: Ledger, make_settings):  # type: ignore[no-untyped-def]
    def build(**options: Any) -> JobContext:
        settings = options.pop("settings", None) or make_settings()
        return JobContext(ledger, settings, options=options)

    return build
