"""Leader locks: at most one runner works on a given job at a time.

One lock per job (not one for the whole scheduler), so a long reconciliation
on one replica never delays hold expiry on another. Three implementations,
picked by `leader_lock_for`:

- Redis (when LEDGER_REDIS_URL is set): `SET key token NX PX ttl`; release
  and renew are Lua scripts that act only if the key still holds OUR token,
  so a runner whose lock expired can never free or extend someone else's;
- PostgreSQL: `pg_try_advisory_lock` on a dedicated connection, held for the
  run (a crashed runner's connection closes and frees it);
- SQLite: a lease row in `job_lease`, taken in a `BEGIN IMMEDIATE`
  transaction, that expires after its TTL.

A lock is a guard, not the guarantee: a lease can lapse mid-run (GC pause,
network split). The unique (job, period) row in `job_run` is what makes a
second run of the same period impossible.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.store.engine import writer
from ledger.store.job_models import JobLease

LEASE = JobLease.__table__  # type: ignore[attr-defined]

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class LeaderLock(Protocol):
    """One named lock. `acquire` never blocks: False means someone else holds it."""

    def acquire(self) -> bool: ...

    def renew(self) -> bool:
        """Extends our hold; False when we no longer hold it (stop working)."""
        ...

    def release(self) -> None: ...


class RedisLock:
    def __init__(self, client: Any, name: str, ttl_seconds: float) -> None:
        self.client = client
        self.name = name
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = secrets.token_hex(16)

    def acquire(self) -> bool:
        return bool(self.client.set(self.name, self.token, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.name, self.token, self.ttl_ms))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.name, self.token)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_try_advisory_lock` (Python's hash() is salted)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PostgresAdvisoryLock:
    def __init__(self, engine: sa.Engine, name: str) -> None:
        self.engine = engine
        self.key = advisory_key(name)
        self.conn: sa.Connection | None = None

    def acquire(self) -> bool:
        # Session-level lock: it lives as long as this connection, not a transaction.
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
                   .scalar())
        if got:
            self.conn = conn
        else:
            conn.close()
        return got

    def renew(self) -> bool:
        # Held for as long as the connection lives; check it is still alive.
        if self.conn is None:
            return False
        try:
            self.conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError:
            return False
        return True

    def release(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
        finally:
            self.conn.close()
            self.conn = None


class SqliteLeaseLock:
    """A lease row; wall-clock time (not the ledger clock) so tests that freeze the
    ledger's clock cannot make a lease eternal."""

    def __init__(self, engine: sa.Engine, name: str, ttl_seconds: float) -> None:
        self.engine = writer(engine)
        self.name = name
        self.ttl = timedelta(seconds=ttl_seconds)
        self.token = secrets.token_hex(16)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(time.time(), UTC)

    def acquire(self) -> bool:
        now = self._now()
        with Session(self.engine) as session, session.begin():
            row = session.execute(sa.select(LEASE).where(LEASE.c.name == self.name)).first()
            if row is None:
                session.execute(sa.insert(LEASE).values(
                    name=self.name, holder=self.token, expires_at=now + self.ttl))
                return True
            if row.holder != self.token and row.expires_at > now:
                return False
            session.execute(sa.update(LEASE).where(LEASE.c.name == self.name)
                            .values(holder=self.token, expires_at=now + self.ttl))
            return True

    def renew(self) -> bool:
        with Session(self.engine) as session, session.begin():
            done = session.execute(
                sa.update(LEASE)
                .where(LEASE.c.name == self.name, LEASE.c.holder == self.token)
                .values(expires_at=self._now() + self.ttl)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def release(self) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(
                sa.delete(LEASE).where(LEASE.c.name == self.name, LEASE.c.holder == self.token)
            )


class LockFactory:
    """Makes a fresh lock per run (each with its own token) for a named job."""

    def __init__(self, engine: sa.Engine, redis_url: str | None, prefix: str,
                 ttl_seconds: float) -> None:
        self.engine = engine
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.redis: Any = None
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=5)

    @property
    def kind(self) -> str:
        if self.redis is not None:
            return "redis"
        return "postgres-advisory" if self.engine.dialect.name == "postgresql" else "sqlite-lease"

    def for_job(self, job: str) -> LeaderLock:
        name = f"{self.prefix}{job}"
        if self.redis is not None:
            return RedisLock(self.redis, name, self.ttl)
        if self.engine.dialect.name == "postgresql":
            return PostgresAdvisoryLock(self.engine, name)
        return SqliteLeaseLock(self.engine, name, self.ttl)

    def close(self) -> None:
        if self.redis is not None:
            self.redis.close()
