"""Builds the ledger from settings: the one place that wires engine, rule set and clock."""

from __future__ import annotations

import sqlalchemy as sa

from ledger.clock import Clock
from ledger.policy.ruleset import load_rule_set
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.engine import create_ledger_engine
from ledger.store.migrate import upgrade


def open_engine(settings: Settings, migrate: bool = True) -> sa.Engine:
    engine = create_ledger_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    return engine


def open_ledger(settings: Settings, clock: Clock | None = None, migrate: bool = True) -> Ledger:
    engine = open_engine(settings, migrate=migrate)
    return Ledger(engine, load_rule_set(settings.rule_set), clock)
