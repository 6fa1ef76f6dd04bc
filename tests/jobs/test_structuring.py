"""Structuring: consignees linked by a shared address, officer or owner, outside one
declared group, taking more than one LPP cap in a calendar year (issue 12, 5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from jobs.registry import JOBS
from jobs.structuring import linked_sets, structuring
from ledger.clock import ManualClock
from ledger.job_records import list_findings
from ledger.policy.buckets import lpp_bucket
from ledger.policy.caps import bucket_cap
from ledger.policy.types import ConsigneeInfo
from ledger.reference import ConsigneeInput, Identity, Owner
from ledger.service import Ledger
from tests.factories import line, operator, reserve


@pytest.fixture
def cap(ledger: Ledger, clock: ManualClock) -> int:
    """One LPP cap, as the rule set in force gives it (never restated here)."""
    bucket = lpp_bucket(ledger.rule_set, ConsigneeInfo("x", "SG"), clock.now().date())
    value = bucket_cap(ledger.rule_set, bucket, clock.now(), {})
    assert value is not None and value > 0
    return value


@pytest.fixture(autouse=True)
def _operator(ledger: Ledger) -> None:
    operator(ledger, "op1", hq="SG")


def party(ledger: Ledger, c_id: str, *, address: str | None = None,
          officers: tuple[str, ...] = (), owners: tuple[tuple[str, int], ...] = (),
          group: str | None = None) -> str:
    ledger.put_consignee(ConsigneeInput(
        c_id, f"{c_id} Trading Co., Ltd.", "SG", "op1", group,
        identity=Identity(address, officers, tuple(Owner(n, p) for n, p in owners))))
    return c_id


def use(ledger: Ledger, c_id: str, tpp: int, *, commit: bool = True,
        hold_seconds: int = 3600) -> str:
    """`tpp` on the LPP path for `c_id` (committed unless told otherwise)."""
    outcome = reserve(ledger, line("SG", c_id, tpp=tpp), hold_seconds=hold_seconds)
    assert outcome.reservation is not None, outcome
    assert outcome.reservation.lines[0].path == "lpp"
    if commit:
        ledger.commit(outcome.reservation.id, "vendor1")
    return outcome.reservation.id


def findings(ledger: Ledger) -> list[dict[str, Any]]:
    return list_findings(ledger.engine, kind="structuring")


def test_registered_hourly() -> None:
    assert JOBS["structuring"].run is structuring
    assert JOBS["structuring"].every_seconds == 3600


def test_two_consignees_sharing_an_address(ledger: Ledger, make_ctx, cap: int) -> None:
    party(ledger, "a", address="No. 8, Example Rd., Bldg 3")
    party(ledger, "b", address="no 8 example road building 3")
    party(ledger, "c", address="12 Other Street")  # no link
    half = cap // 2 + 1
    use(ledger, "a", half)
    use(ledger, "b", half, commit=False)  # an unexpired hold counts
    use(ledger, "c", cap)

    result = structuring(make_ctx())
    assert result.outcome == "ok"
    assert result.figures["linked_sets"] == 1 and result.figures["new_findings"] == 1
    [found] = findings(ledger)
    assert found["subject"] == "2025:a+b" and found["job"] == "structuring"
    d = found["details"]
    assert d["year"] == 2025 and d["period"] == "2025"
    assert [(p["id"], p["lpp_use"]) for p in d["parties"]] == [("a", half), ("b", half)]
    assert d["links"] == [{"field": "address", "value": "number 8 example road building 3",
                           "parties": ["a", "b"]}]
    assert (d["total"], d["cap"], d["over_by"]) == (2 * half, cap, 2 * half - cap)


def test_three_consignees_linked_through_the_middle_one(ledger: Ledger, make_ctx,
                                                       cap: int) -> None:
    # a-b share an address, b-c an officer; a and c share nothing: one set of three.
    party(ledger, "a", address="1 Harbour Road", officers=("Li Wei",))
    party(ledger, "b", address="1 HARBOUR RD.", officers=("Zhang  San",))
    party(ledger, "c", address="99 Elsewhere Ave", officers=("zhang san",))
    third = cap // 3 + 1  # any two stay within one cap, all three do not
    for c_id in "abc":
        use(ledger, c_id, third)

    assert structuring(make_ctx()).figures["new_findings"] == 1
    [found] = findings(ledger)
    d = found["details"]
    assert [p["id"] for p in d["parties"]] == ["a", "b", "c"]
    assert d["links"] == [
        {"field": "address", "value": "1 harbour road", "parties": ["a", "b"]},
        {"field": "officer", "value": "zhang san", "parties": ["b", "c"]},
    ]
    assert d["total"] == 3 * third > cap


def test_not_within_one_declared_group_but_across_groups(ledger: Ledger, make_ctx,
                                                        cap: int) -> None:
    party(ledger, "a", address="5 Same Street", group="g1")
    party(ledger, "b", address="5 Same St", group="g1")
    use(ledger, "a", cap // 2)
    use(ledger, "b", cap - cap // 2)  # the group's one bucket, full
    result = structuring(make_ctx())
    assert (result.figures["linked_sets"], result.figures["sets_checked"]) == (1, 0)
    assert findings(ledger) == []

    # A third consignee outside the group, at the same address: the set is checked.
    party(ledger, "c", address="5 same street")
    use(ledger, "c", 1)
    result = structuring(make_ctx())
    assert result.figures["sets_checked"] == 1 and result.figures["new_findings"] == 1
    [found] = findings(ledger)
    assert [(p["id"], p["group_id"]) for p in found["details"]["parties"]] == [
        ("a", "g1"), ("b", "g1"), ("c", None)]
    assert found["details"]["total"] == cap + 1


def test_exactly_one_cap_is_no_finding_one_more_tpp_is(ledger: Ledger, make_ctx,
                                                       cap: int) -> None:
    party(ledger, "a", officers=("Jane Roe",))
    party(ledger, "b", officers=("JANE ROE",))
    use(ledger, "a", cap - 1000)
    use(ledger, "b", 1000)
    result = structuring(make_ctx())
    assert result.figures["over_cap"] == 0 and findings(ledger) == []

    use(ledger, "b", 1)
    assert structuring(make_ctx()).figures["new_findings"] == 1
    [found] = findings(ledger)
    assert found["details"]["total"] == cap + 1
    assert found["details"]["links"][0]["field"] == "officer"


def test_a_shared_owner_links(ledger: Ledger, make_ctx, cap: int) -> None:
    party(ledger, "a", owners=(("Example Holdings Ltd.", 60),))
    party(ledger, "b", owners=(("EXAMPLE HOLDINGS LIMITED", 30), ("Someone Else", 10)))
    use(ledger, "a", cap)
    use(ledger, "b", 1)
    assert structuring(make_ctx()).figures["new_findings"] == 1
    [found] = findings(ledger)
    [link] = found["details"]["links"]
    assert link["field"] == "owner" and link["parties"] == ["a", "b"]


def test_once_per_fact(ledger: Ledger, make_ctx, cap: int) -> None:
    party(ledger, "a", address="7 Loop Lane")
    party(ledger, "b", address="7 Loop Ln")
    use(ledger, "a", cap)
    use(ledger, "b", 1)
    assert structuring(make_ctx()).figures["new_findings"] == 1
    assert structuring(make_ctx()).figures["new_findings"] == 0
    use(ledger, "b", 5)  # more use of the same set, same year: the same fact
    again = structuring(make_ctx())
    assert again.figures["over_cap"] == 1 and again.figures["new_findings"] == 0
    [found] = findings(ledger)
    assert found["details"]["total"] == cap + 1  # as first found

    party(ledger, "c", address="7 loop lane")  # the set grows: a new fact
    assert structuring(make_ctx()).figures["new_findings"] == 1
    assert [f["subject"] for f in findings(ledger)] == ["2025:a+b+c", "2025:a+b"]


def test_released_and_lapsed_holds_do_not_count(ledger: Ledger, clock: ManualClock,
                                                make_ctx, cap: int) -> None:
    party(ledger, "a", address="3 Quay Street")
    party(ledger, "b", address="3 Quay St")
    use(ledger, "a", cap - 10)
    released = use(ledger, "b", 100, commit=False)
    ledger.release(released, "vendor1")
    assert structuring(make_ctx()).figures["over_cap"] == 0

    use(ledger, "b", 100, commit=False, hold_seconds=60)  # not yet past its time: counts
    assert structuring(make_ctx(years=[2025])).figures["over_cap"] == 1
    clock.advance(61)  # lapsed, whether or not expired yet
    assert structuring(make_ctx()).figures["over_cap"] == 0
    assert len(findings(ledger)) == 1  # the earlier fact stays recorded

    # Committed then reversed: no longer use.
    party(ledger, "c", address="3 quay street")
    reversed_ = use(ledger, "c", 100)
    ledger.reverse(reversed_, "vendor1", "cancelled order")
    assert structuring(make_ctx()).figures["over_cap"] == 0


def test_calendar_years_are_not_summed(ledger: Ledger, clock: ManualClock, make_ctx,
                                       cap: int) -> None:
    party(ledger, "a", address="2 Year Road")
    party(ledger, "b", address="2 Year Rd")
    use(ledger, "a", cap - 5)
    clock.set(datetime(2026, 3, 1, tzinfo=UTC))
    use(ledger, "b", 10)
    result = structuring(make_ctx())
    assert result.figures["years"] == [2025, 2026]
    assert result.figures["over_cap"] == 0

    use(ledger, "a", cap - 5)  # 2026: a's cap - 5 plus b's 10
    assert structuring(make_ctx()).figures["new_findings"] == 1
    [found] = findings(ledger)
    d = found["details"]
    assert (d["year"], d["total"]) == (2026, cap + 5)
    assert [p["lpp_use"] for p in d["parties"]] == [cap - 5, 10]


def test_reads_only_consignees_with_identity(ledger: Ledger, make_ctx, cap: int) -> None:
    ledger.put_consignee(ConsigneeInput("plain", "plain", "SG", "op1"))
    party(ledger, "a", address="4 Only Road")
    party(ledger, "b", officers=("Solo Officer",))
    use(ledger, "plain", cap)
    result = structuring(make_ctx())
    assert result.figures["consignees_with_identity"] == 2
    assert result.figures["linked_sets"] == 0


def test_linked_sets_are_connected_components() -> None:
    class Row:
        def __init__(self, id: str, address: str | None = None, officers: tuple = (),
                     owners: tuple = ()) -> None:
            self.id, self.name, self.group_id = id, id, None
            self.address, self.officers, self.owners = address, list(officers), list(owners)

    rows = [Row("d", officers=("P Q",)), Row("a", address="x road"), Row("c", officers=("p q",)),
            Row("b", address="X Rd", owners=({"name": "O", "percent": 5},)),
            Row("e", owners=({"name": "o", "percent": 5},)), Row("f", address="...")]
    sets = linked_sets(rows)
    assert [[p.id for p in parties] for parties, _ in sets] == [["a", "b", "e"], ["c", "d"]]
    assert [(k.field, k.parties) for k in sets[0][1]] == [("address", ("a", "b")),
                                                         ("owner", ("b", "e"))]


def test_ledger_jobs_run_structuring(ledger: Ledger, clock: ManualClock, cap: int,
                                     monkeypatch, capsys) -> None:
    from ledger.cli import main
    from ledger.settings import get_settings

    clock.set(datetime.now(UTC))  # the CLI judges by the system clock
    party(ledger, "a", address="6 Cli Street")
    party(ledger, "b", address="6 CLI St.")
    use(ledger, "a", cap)
    use(ledger, "b", 1)
    monkeypatch.setenv("LEDGER_DATABASE_URL", ledger.engine.url.render_as_string(False))
    monkeypatch.delenv("LEDGER_REDIS_URL", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["jobs", "run", "structuring"]) == 0
    finally:
        get_settings.cache_clear()
    out = json.loads(capsys.readouterr().out)
    assert out["job"] == "structuring" and out["outcome"] == "ok"
    assert out["figures"]["new_findings"] == 1 and out["run_id"] is not None
    [found] = findings(ledger)
    assert found["run_id"] == out["run_id"]
    assert [p["id"] for p in found["details"]["parties"]] == ["a", "b"]
