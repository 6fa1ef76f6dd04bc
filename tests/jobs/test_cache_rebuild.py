"""The cache rebuild job against the API's real Redis headroom cache."""

from __future__ import annotations

import json

import pytest
import redis

from api.cache import build_headroom_cache
from jobs.cache_rebuild import namespace, rebuild_cache
from ledger.job_records import list_findings
from ledger.queries import LedgerReader
from ledger.service import Ledger
from tests.factories import consignee, line, operator, reserve


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_stale_cached_answer_is_reported_and_removed(
    ledger: Ledger, db_url: str, redis_url: str, make_ctx, make_settings
) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    reserve(ledger, line("SG", "sg-lab", quantity=10))
    cache = build_headroom_cache(LedgerReader(ledger.engine, ledger.rule_set), redis_url,
                                 namespace=namespace(db_url))
    now = ledger.clock.now()
    answer = cache.headroom("SG", "op1", "sg-lab", now)
    settings = make_settings(redis_url=redis_url)
    clean = rebuild_cache(make_ctx(settings=settings))
    assert clean.figures["checked"] == 1 and clean.figures["mismatches"] == 0

    # A lost invalidation: the cached answer disagrees with the database.
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = next(iter(client.scan_iter(match=f"tpp:{namespace(db_url)}:h:*")))
    doc = json.loads(client.get(key))
    doc["answer"]["buckets"][0]["available"] += 1
    client.set(key, json.dumps(doc))
    stale = rebuild_cache(make_ctx(settings=settings))
    assert stale.figures["mismatches"] == 1 and stale.figures["rebuilt"]
    assert client.get(key) is None
    assert list_findings(ledger.engine, kind="cache_mismatch")[0]["details"]["database"] == answer
    assert cache.headroom("SG", "op1", "sg-lab", now) == answer  # recomputed from the database
    client.close()


def test_skipped_without_redis(make_ctx) -> None:
    assert rebuild_cache(make_ctx()).outcome == "skipped"
