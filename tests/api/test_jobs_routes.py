"""GET /v1/jobs/runs and /v1/reconciliation/findings: admin and auditor only."""

from __future__ import annotations

from tests.api.conftest import Api


def test_runs_and_findings_are_listed_for_admin_and_auditor(sqlite_api: Api) -> None:
    from jobs.runner import JobRunner
    from ledger.settings import Settings

    ledger = sqlite_api.client.app.state.services.ledger
    settings = Settings(database_url=str(ledger.engine.url))
    with ledger.engine.begin() as conn:  # drift, so reconcile finds something
        conn.exec_driver_sql(
            "INSERT INTO bucket (kind, key, period, committed, held) "
            "VALUES ('lpp', 'consignee:x', '2025', 5, 0)")
    run_id, result = JobRunner(ledger, settings).run_now("reconcile")
    assert result.figures["drift"] == 1

    for role in ("admin", "auditor"):
        runs = sqlite_api.get("/v1/jobs/runs", role=role)
        assert runs.status_code == 200, runs.text
        item = runs.json()["items"][0]
        assert (item["id"], item["job"], item["outcome"]) == (run_id, "reconcile", "ok")
        found = sqlite_api.get("/v1/reconciliation/findings?kind=projection_drift", role=role)
        assert found.status_code == 200
        assert found.json()["items"][0]["subject"] == "lpp:consignee:x:2025"
    for role in ("vendor", "operator"):
        assert sqlite_api.get("/v1/jobs/runs", role=role).status_code == 403
        assert sqlite_api.get("/v1/reconciliation/findings", role=role).status_code == 403
    assert sqlite_api.get("/v1/jobs/runs", role=None).status_code == 401
