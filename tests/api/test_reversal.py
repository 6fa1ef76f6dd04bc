"""POST /v1/reservations/{id}/reverse: a correction is a new entry, never an edit."""

from __future__ import annotations

from tests.api.conftest import H100, Api, bucket, line, seed_consignee, seed_operator

QUERY = "/v1/headroom?country=SG&consignee_id=sg-lab"


def test_reversal_gives_committed_tpp_back_with_new_entries(api: Api) -> None:
    seed_operator(api, "op1", hq="SG")
    seed_consignee(api, "sg-lab", "SG")
    rid = api.reserve([line("SG", "sg-lab", quantity=10)], key="k1").json()["id"]
    reason = {"reason": "shipment cancelled at the border"}

    r = api.post(f"/v1/reservations/{rid}/reverse", reason)
    assert r.status_code == 409 and r.json()["code"] == "not_committed"
    assert api.post(f"/v1/reservations/{rid}/commit", role="vendor").status_code == 200
    assert bucket(api.get(QUERY).json(), "lpp")["committed"] == 10 * H100

    for role in ("vendor", "operator", "auditor"):
        assert api.post(f"/v1/reservations/{rid}/reverse", reason, role=role).status_code == 403
    assert api.post(f"/v1/reservations/{rid}/reverse", {}).status_code == 422
    r = api.post(f"/v1/reservations/{rid}/reverse", reason)
    assert r.status_code == 200, r.text
    assert r.json()["reversed_at"] is not None and r.json()["status"] == "committed"
    lpp = bucket(api.get(QUERY).json(), "lpp")
    assert (lpp["committed"], lpp["available"]) == (0, 26_900_000)

    again = api.post(f"/v1/reservations/{rid}/reverse", reason)
    assert again.status_code == 200 and again.json()["reversed_at"] == r.json()["reversed_at"]
    kinds = [e["kind"] for e in api.get("/v1/entries?limit=10").json()["items"]]
    assert kinds == ["hold", "commit", "reversal"]
    assert api.get("/v1/audit/verify").json()["ok"] is True
    assert api.post("/v1/reservations/res_nope/reverse", reason).status_code == 404
