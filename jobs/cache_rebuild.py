"""Job: check the shared (Redis) headroom cache against the database and rebuild it.

The cache belongs to the API (api/cache.py); jobs/ may not import api/, so this
module reads the key format api/cache.py documents:
  tpp:<ns>:h:<rule set>@<version>|<date>|<country>|<operator>|<consignee>  -> answer doc
  tpp:<ns>:v:<kind>|<key>|<period>, tpp:<ns>:vf:<operator>, tpp:<ns>:ref  -> tokens
where <ns> = sha256(LEDGER_DATABASE_URL)[:12], and an answer doc is
{"computed_at", "valid_until", "tokens": {key: token}, "answer"}.

Every answer the cache would serve right now is recomputed from the database
(ledger.queries.LedgerReader, the same code the API's miss path runs); a
difference is a `cache_mismatch` finding and the answer is deleted. If any
mismatch was found (an invalidation was lost, so others may be stale too), or
with `full=True`, the `ref` token every answer depends on is replaced: every
answer is then recomputed from the database on its next read. That is the
rebuild; nothing is ever written to the cache that the database did not say.
Without Redis the cache lives inside each API process and is skipped here.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from jobs.context import JobContext, JobResult
from jobs.records import record_finding
from ledger.queries import LedgerReader

TOKEN_TTL_S = 7 * 86400  # as api/cache.py


def namespace(database_url: str) -> str:
    return hashlib.sha256(database_url.encode()).hexdigest()[:12]


def invalidate_all(settings: Any) -> bool:
    """Replaces the `ref` token every cached answer depends on (no-op without Redis).

    For writes made outside the API processes' `Ledger.on_commit` (e.g. a
    projection repair by `ledger jobs`): every answer is recomputed on its next read.
    """
    if not settings.redis_url:
        return False
    import redis

    client = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=5)
    try:
        prefix = f"tpp:{namespace(settings.database_url)}:"
        client.set(prefix + "ref", uuid.uuid4().hex, ex=TOKEN_TTL_S)
    finally:
        client.close()
    return True


def _served(client: Any, prefix: str, doc: dict[str, Any], now: datetime) -> bool:
    """Whether api/cache.py would serve this answer at `now` (its exact rules)."""
    if datetime.fromisoformat(doc["computed_at"]) > now:
        return False
    if doc["valid_until"] is not None and now >= datetime.fromisoformat(doc["valid_until"]):
        return False
    keys = list(doc["tokens"])
    current = client.mget([prefix + k for k in keys]) if keys else []
    return all(doc["tokens"][k] == c for k, c in zip(keys, current, strict=True))


def rebuild_cache(ctx: JobContext) -> JobResult:
    url = ctx.settings.redis_url
    if not url:
        return JobResult.skipped("no LEDGER_REDIS_URL: the in-process cache has nothing shared")
    import redis

    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
    prefix = f"tpp:{namespace(ctx.settings.database_url)}:"
    rs = ctx.ledger.rule_set
    reader = LedgerReader(ctx.engine, rs)
    now = ctx.now()
    scanned = checked = mismatches = removed = 0
    found: list[tuple[str, Any, Any]] = []  # (subject, cached, database)
    try:
        for key in client.scan_iter(match=prefix + "h:*", count=500):
            scanned += 1
            raw = client.get(key)
            if raw is None:
                continue
            spec, day, country, operator, consignee = key[len(prefix) + 2:].split("|")
            if spec != f"{rs.name}@{rs.version}" or date.fromisoformat(day) != now.date():
                continue  # never served today / under this rule set
            doc = json.loads(raw)
            if not _served(client, prefix, doc, now):
                continue
            checked += 1
            fresh = json.loads(json.dumps(
                reader.headroom(country, operator or None, consignee or None, now),
                default=str))
            if fresh != doc["answer"]:
                mismatches += 1
                removed += client.delete(key)
                found.append((key[len(prefix):], doc["answer"], fresh))
        if found:
            # One short write transaction after the scan: the write lock is never
            # held while Redis is scanned and answers are recomputed.
            with Session(ctx.write_engine) as session, session.begin():
                for subject, cached, fresh in found:
                    record_finding(session, kind="cache_mismatch", subject=subject,
                                   job="cache_rebuild", now=now, run_id=ctx.run_id,
                                   details={"cached": cached, "database": fresh},
                                   identity=[cached, fresh])
        rebuilt = mismatches > 0 or bool(ctx.options.get("full"))
        if rebuilt:
            client.set(prefix + "ref", uuid.uuid4().hex, ex=TOKEN_TTL_S)
    finally:
        client.close()
    return JobResult.ok(scanned=scanned, checked=checked, mismatches=mismatches,
                        removed=removed, rebuilt=rebuilt)
