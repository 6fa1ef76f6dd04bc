"""Operator keys read only their own reference records (issue 9, defect 5).

"An operator key reads only its own operator, its own consignees and the
licences naming them; other operators' records are 403." A consignee with no
operator and a licence with no consignee belong to no operator: 403 too.
Vendors, auditors and admins read every record.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import Api, seed_consignee, seed_license, seed_operator

FORBIDDEN = "https://tpp-ledger.dev/problems/forbidden"


@pytest.fixture
def world(api: Api) -> Api:
    seed_operator(api, "op1")
    seed_operator(api, "op2")
    seed_consignee(api, "c-own", "AE", operator_id="op1")
    seed_consignee(api, "c-other", "AE", operator_id="op2")
    seed_consignee(api, "c-free", "AE", operator_id=None)
    seed_license(api, "l-own", "AE", 10, "c-own")
    seed_license(api, "l-other", "AE", 10, "c-other")
    seed_license(api, "l-free", "AE", 10, "c-free")
    seed_license(api, "l-open", "AE", 10, None)
    return api


OWN = ["/v1/operators/op1", "/v1/consignees/c-own", "/v1/licenses/l-own"]
NOT_OWN = ["/v1/operators/op2", "/v1/consignees/c-other", "/v1/consignees/c-free",
           "/v1/licenses/l-other", "/v1/licenses/l-free", "/v1/licenses/l-open"]


def test_an_operator_key_reads_its_own_records(world: Api) -> None:
    for path in OWN:
        r = world.get(path, role="operator")
        assert r.status_code == 200, (path, r.text)
        assert r.json() == world.get(path, role="admin").json()


@pytest.mark.parametrize("path", NOT_OWN)
def test_an_operator_key_is_403_on_records_not_its_own(world: Api, path: str) -> None:
    r = world.get(path, role="operator")
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == FORBIDDEN
    assert "updated_at" not in r.text and "hq_country" not in r.text  # no record in it


def test_the_other_operator_is_scoped_the_same_way(world: Api) -> None:
    for path in ("/v1/operators/op2", "/v1/consignees/c-other", "/v1/licenses/l-other"):
        assert world.get(path, role="operator2").status_code == 200, path
    for path in OWN:
        assert world.get(path, role="operator2").status_code == 403, path


def test_an_operator_key_cannot_probe_which_ids_exist(world: Api) -> None:
    # Another operator's record and a record that does not exist answer alike.
    for path in ("/v1/operators/nobody", "/v1/consignees/nobody", "/v1/licenses/nobody"):
        assert world.get(path, role="operator").status_code == 403, path
        assert world.get(path, role="admin").status_code == 404, path


def test_an_operator_key_whose_own_operator_is_not_registered_gets_404(api: Api) -> None:
    assert api.get("/v1/operators/op1", role="operator").status_code == 404


@pytest.mark.parametrize("role", ["admin", "vendor", "auditor"])
def test_other_roles_read_every_record(world: Api, role: str) -> None:
    for path in OWN + NOT_OWN:
        assert world.get(path, role=role).status_code == 200, (role, path)


def test_scope_follows_the_consignee_when_it_moves(world: Api) -> None:
    seed_consignee(world, "c-other", "AE", operator_id="op1")
    assert world.get("/v1/consignees/c-other", role="operator").status_code == 200
    assert world.get("/v1/licenses/l-other", role="operator").status_code == 200
    assert world.get("/v1/licenses/l-other", role="operator2").status_code == 403
