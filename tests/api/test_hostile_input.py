"""Input a database would refuse is a 422 naming the field, never a 500."""

from __future__ import annotations

import base64
import json

from tests.api.conftest import Api, line, seed_consignee, seed_operator


def test_nul_characters_are_422_everywhere(api: Api) -> None:
    seed_operator(api, "op1", hq="SG")
    seed_consignee(api, "sg-lab", "SG")
    r = api.put("/v1/operators/op9", {"name": "bad\u0000name", "hq_country": "SG"})
    assert r.status_code == 422 and r.json()["field"] == "name"
    rid = api.reserve([line("SG", "sg-lab")], key="k1").json()["id"]
    assert api.post(f"/v1/reservations/{rid}/commit", role="vendor").status_code == 200
    r = api.post(f"/v1/reservations/{rid}/reverse", {"reason": "x\u0000y"})
    assert r.status_code == 422 and r.json()["field"] == "reason"
    r = api.post("/v1/reservations:batch", {"reservations": [
        {"idempotency_key": "k\u0000", "lines": [line("SG", "sg-lab")]}]}, role="vendor")
    assert r.status_code == 422 and r.json()["field"] == "reservations[0].idempotency_key"
    assert api.get("/v1/operators/op9").status_code == 404  # nothing was written


def test_a_cursor_beyond_any_seq_is_422(api: Api) -> None:
    for after in (10**27, -1, 2**63):
        cursor = base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()
        r = api.get(f"/v1/entries?cursor={cursor.rstrip('=')}")
        assert r.status_code == 422 and r.json()["field"] == "cursor", r.text
