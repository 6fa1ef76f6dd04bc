"""The headroom hot path (one MGET of the remembered answer and its tokens) is exactly
as current as the full check: a write in this process or in another one, or a hold
lapsing, always reaches the next read."""

from __future__ import annotations

from collections.abc import Callable

from tests.api.conftest import H100, Api, bucket, line, seed_consignee, seed_operator

QUERY = "/v1/headroom?country=SG&consignee_id=sg-lab"


def _available(api: Api) -> int:
    r = api.get(QUERY)
    assert r.status_code == 200, r.text
    return int(bucket(r.json(), "lpp")["available"])


def test_hot_path_never_serves_a_stale_answer(
    sqlite_url: str, redis_url: str, start_api: Callable[..., Api]
) -> None:
    one = start_api(sqlite_url, redis_url=redis_url)
    two = start_api(sqlite_url, redis_url=redis_url)  # another process, same DB and Redis
    seed_operator(one, "op1", hq="SG")
    seed_consignee(one, "sg-lab", "SG")
    full = 26_900_000
    assert _available(one) == full  # computed and remembered
    hits = one_cache(one).hits
    assert _available(one) == full  # served by the hot path
    assert one_cache(one).hits == hits + 1

    # A reservation through the other process: this one's remembered answer is stale.
    r = two.reserve([line("SG", "sg-lab", quantity=10)], key="k1")
    assert r.status_code == 201, r.text
    assert _available(one) == full - 10 * H100

    # A hold lapsing changes the answer with no write at all.
    r = one.reserve([line("SG", "sg-lab", quantity=5)], key="k2", hold_seconds=60)
    assert r.status_code == 201
    assert _available(one) == full - 15 * H100
    assert _available(one) == full - 15 * H100  # hot path again
    for api in (one, two):
        api.clock.advance(60)
    assert _available(one) == full - 10 * H100


def one_cache(api: Api):  # type: ignore[no-untyped-def]
    return api.client.app.state.services.headroom
