"""Builds the ledger from settings: the one place that wires engine, rule set and clock."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ledger.clock import Clock
from ledger.errors import LedgerError
from ledger.heads import HeadSigner, KeyRing, last_witnessed
from ledger.policy.ruleset import load_rule_set
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store.engine import create_ledger_engine
from ledger.store.migrate import upgrade
from ledger.witness import witness_publisher

SCHEMES = ("sqlite", "postgresql", "postgres")


class DatabaseUnusable(LedgerError):
    """The configured database cannot be opened: bad URL, missing, unreachable, no schema."""

    code = "database_unusable"


def shown_url(url: str) -> str:
    """The database URL as it may be printed: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def open_engine(settings: Settings, migrate: bool = True, create: bool = False) -> sa.Engine:
    """An engine on the configured database, its schema brought to head.

    Unless `create` (only `ledger serve` and `ledger migrate`), a database that does not
    exist, or has no ledger schema, is refused (DatabaseUnusable naming the URL): a
    command run from the wrong folder must not make itself a new, empty ledger."""
    url = settings.database_url
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise DatabaseUnusable(f"{shown_url(url)} is not a database URL "
                               "(use sqlite:///path or postgresql://user@host/db)") from None
    scheme = parsed.get_backend_name()
    if scheme not in SCHEMES:
        raise DatabaseUnusable(f"{shown_url(url)}: unsupported database {scheme!r} "
                               "(use sqlite:///path or postgresql://user@host/db)")
    file = parsed.database if scheme == "sqlite" else None
    if not create and file not in (None, "", ":memory:") and not Path(str(file)).is_file():
        raise DatabaseUnusable(f"no database at {shown_url(url)} (file not found); set "
                                   "LEDGER_DATABASE_URL, or run `ledger migrate` to create it")
    engine = create_ledger_engine(url)
    try:
        if not create and not sa.inspect(engine).has_table("alembic_version"):
            raise DatabaseUnusable(f"{shown_url(url)} has no ledger schema; "
                                   "run `ledger migrate` first")
        if migrate:
            upgrade(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise DatabaseUnusable(f"cannot open the database at {shown_url(url)}: "
                               f"{first_line(exc.orig or exc)}") from None
    except BaseException:
        engine.dispose()
        raise
    return engine


def open_ledger(settings: Settings, clock: Clock | None = None, migrate: bool = True,
                create: bool = False) -> Ledger:
    rule_set = load_rule_set(settings.rule_set)
    heads = head_signer(settings)
    engine = open_engine(settings, migrate=migrate, create=create)
    return Ledger(engine, rule_set, clock, heads=heads)


def head_signer(settings: Settings) -> HeadSigner | None:
    """The key ring and witnesses the settings name; None when no key is configured
    (heads are then unsigned, and verification says so)."""
    if not settings.signing_key_path:
        return None
    heads = HeadSigner(KeyRing.load(settings.signing_key_path, settings.signing_public_keys))
    if settings.witness_file:
        # Writers refuse a database that ends before the last witnessed head (restored
        # from an older backup) even after a restart: one read of the file's tail.
        heads.last = last_witnessed(settings.witness_file, heads.keys)
    publisher = witness_publisher(settings)
    if publisher is not None:
        heads.listeners.append(publisher.publish)
    return heads


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
