"""GET /metrics after a short load shows every family with bounded labels; logs are JSON
lines carrying the request id that the X-Request-ID response header returns."""

from __future__ import annotations

import io
import json
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from api.services import Services
from jobs.runner import JobRunner
from ledger.logs import configure_logging
from tests.api.conftest import Api, line, seed_consignee, seed_operator

LPP_CAP = 26_900_000


def scrape(api: Api) -> dict[str, list[Any]]:
    r = api.get("/metrics", role=None)  # public, like /health
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def labelled(samples: list[Any], name: str, **labels: str) -> list[Any]:
    return [s for s in samples if s.name == name
            and all(s.labels.get(k) == v for k, v in labels.items())]


def test_every_family_after_a_short_load(sqlite_api: Api) -> None:
    api = sqlite_api
    seed_operator(api, "op1", hq="AE")
    seed_consignee(api, "c1", "AE")
    ids = []
    for n in range(3):
        r = api.reserve([line("AE", "c1", quantity=100)], key=f"k{n}")
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert api.reserve([line("AE", "c1", quantity=100)], key="k0").status_code == 201  # replay
    assert api.post(f"/v1/reservations/{ids[0]}/commit", role="vendor").status_code == 200
    denied = api.reserve([line("AE", "c1", quantity=2000)], key="too-big")
    assert denied.status_code == 409
    assert api.get("/v1/reservations/res_nope", role="vendor").status_code == 404
    assert api.get("/v1/entries", role=None).status_code == 401
    for _ in range(2):  # a miss, then a hit
        assert api.get("/v1/headroom?country=AE&operator_id=op1&consignee_id=c1",
                       role="vendor").status_code == 200
    services: Services = api.client.app.state.services
    _, result = JobRunner(services.ledger, services.settings).run_now("expire_holds")
    assert result.outcome == "ok"

    m = scrape(api)
    http = m["ledger_http_requests"]
    assert labelled(http, "ledger_http_requests_total", method="POST",
                    route="/v1/reservations", status="201")
    assert labelled(http, "ledger_http_requests_total", method="POST",
                    route="/v1/reservations", status="409")
    assert labelled(http, "ledger_http_requests_total", method="POST",
                    route="/v1/reservations/{reservation_id}/commit", status="200")
    assert labelled(http, "ledger_http_requests_total", route="/v1/entries", status="401")
    assert labelled(http, "ledger_http_requests_total", route="/v1/headroom", status="200")
    routes = {s.labels["route"] for s in http}
    assert not any("res_" in r or "c1" in r for r in routes), routes  # templates, never ids
    assert labelled(m["ledger_http_request_duration_seconds"],
                    "ledger_http_request_duration_seconds_count", route="/v1/headroom")

    res = m["ledger_reservations"]
    assert labelled(res, "ledger_reservations_total", outcome="held", path="lpp")
    assert labelled(res, "ledger_reservations_total", outcome="replayed", path="lpp")
    assert labelled(res, "ledger_reservations_total", outcome="denied", path="none")
    assert labelled(m["ledger_denials"], "ledger_denials_total", constraint="lpp")
    assert labelled(m["ledger_denials"], "ledger_denials_total", constraint="license_required")

    assert labelled(m["ledger_group_commit_batch_size"], "ledger_group_commit_batch_size_count")
    assert labelled(m["ledger_group_commit_wait_seconds"],
                    "ledger_group_commit_wait_seconds_count")
    assert labelled(m["ledger_group_commit_transaction_seconds"],
                    "ledger_group_commit_transaction_seconds_count")

    cache = m["ledger_headroom_cache_lookups"]
    assert labelled(cache, "ledger_headroom_cache_lookups_total", result="miss")
    assert labelled(cache, "ledger_headroom_cache_lookups_total", result="hit")
    assert [s.value for s in m["ledger_headroom_cache_breaker_open"]] == [0.0]
    assert "ledger_headroom_cache_breaker_trips" in m

    assert labelled(m["ledger_job_runs"], "ledger_job_runs_total", job="expire_holds",
                    outcome="ok")
    assert labelled(m["ledger_job_run_duration_seconds"],
                    "ledger_job_run_duration_seconds_count", job="expire_holds")

    ratio = labelled(m["ledger_bucket_use_ratio"], "ledger_bucket_use_ratio", kind="lpp",
                     key="consignee:c1")
    assert len(ratio) == 1 and ratio[0].labels["period"]
    assert ratio[0].value == 3 * 100 * 15_832 / LPP_CAP  # committed + held over the cap
    assert not labelled(m["ledger_bucket_use_ratio"], "ledger_bucket_use_ratio",
                        kind="footprint")


def test_log_lines_are_json_with_the_request_id_of_the_header(sqlite_api: Api) -> None:
    api = sqlite_api
    out = io.StringIO()
    configure_logging(json=True, stream=out)
    try:
        given = api.get("/v1/reservations/res_nope", role="vendor",
                        headers={"X-Request-ID": "trace-42"})
        assert given.status_code == 404 and given.headers["x-request-id"] == "trace-42"
        made = api.get("/v1/reservations/res_none", role="vendor")
        rid = made.headers["x-request-id"]
        assert rid and rid != "trace-42"
        bogus = api.get("/health", role=None, headers={"X-Request-ID": "no spaces\tplease"})
        assert bogus.headers["x-request-id"] != "no spaces\tplease"  # replaced, not echoed
        unmatched = api.get("/v1/nowhere", role="vendor")
        assert unmatched.status_code == 404 and unmatched.headers["x-request-id"]
    finally:
        configure_logging()
    lines = [json.loads(x) for x in out.getvalue().splitlines() if x.strip()]
    assert lines, "no log line"
    by_id = {x.get("request_id") for x in lines}
    assert {"trace-42", rid} <= by_id, lines
    first = next(x for x in lines if x.get("request_id") == "trace-42")
    assert first["level"] and first["timestamp"] and first["event"]
