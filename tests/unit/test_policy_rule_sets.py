"""The three built-in rule sets on the worked cases of the rules (docs/rules/*.md), exactly.

Each case is decided under every rule set it names; the expectation is a path,
or the violations as (constraint, rule step, key, cap, used, requested).
Headquarters, ultimate parents and dated group changes included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ledger.policy import RuleSet, evaluate, load_rule_set, operator_eligibility_errors
from ledger.policy.types import (
    COUNTRY_ALLOCATION,
    LICENSE,
    ConsigneeInfo,
    LicenseInfo,
    LineRequest,
    OperatorInfo,
)

AID = load_rule_set("ai-diffusion-2025")
PRS = load_rule_set("post-rescission-2025")
USC = load_rule_set("us-controls-2026")
SETS = {"AID": AID, "PRS": PRS, "USC": USC}
H100, H200, B200 = 15_832, 15_832, 36_000
AT = datetime(2026, 9, 1, 12, tzinfo=UTC)  # after every dated change
US_OP = OperatorInfo("us-op", "US")

V = tuple[str, str, str, int, int, int]  # constraint, rule step, key, cap, used, requested


def consignee(country: str, hq: str | None = None, parent: str | None = None,
              c_id: str | None = None) -> ConsigneeInfo:
    return ConsigneeInfo(c_id or f"{country.lower()}-lab", country, "us-op", None, hq, parent)


def licence(country: str, tpp: int = 10**10, l_id: str | None = None) -> LicenseInfo:
    return LicenseInfo(l_id or f"L-{country}", country, None, tpp, date(2025, 1, 1),
                       date(2027, 12, 31))


def line(country: str, tpp: int, op: OperatorInfo = US_OP, cons: ConsigneeInfo | None = None,
         lic: LicenseInfo | None = None, chip: str | None = None) -> LineRequest:
    return LineRequest(country, op, cons or consignee(country), tpp, lic, chip)


def outcome(rule_set: RuleSet, request: LineRequest, at: datetime = AT) -> str | list[V]:
    [decided] = evaluate(rule_set, [request], at, {}).lines
    if decided.allowed:
        assert decided.path is not None
        return decided.path
    return [(v.constraint, v.rule, v.key, v.cap, v.used, v.requested) for v in decided.violations]


def needs_licence(step: str, country: str, tpp: int) -> list[V]:
    return [("license_required", step, country, 0, 0, tpp)]


# Case 1: Saudi Arabia (D:1/D:4, not A:5/A:6) --------------------------------------------
@pytest.mark.parametrize("name", ["PRS", "USC"])
def test_case_1_saudi_arabia_needs_a_licence(name: str) -> None:
    rule_set = SETS[name]
    tpp = 1000 * H100
    assert outcome(rule_set, line("SA", tpp)) == needs_licence("country-groups", "SA", tpp)
    [decided] = evaluate(rule_set, [line("SA", tpp, lic=licence("SA", 2_100_000_000))], AT,
                         {}).lines
    assert decided.path == "license"
    [licence_draw, footprint] = decided.draws
    assert (licence_draw.bucket.kind, licence_draw.cap) == (LICENSE, 2_100_000_000)
    assert licence_draw.cap is not None and licence_draw.cap - licence_draw.tpp == 2_084_168_000
    assert footprint.cap is None  # no country allocation exists


def test_case_1_under_the_diffusion_rule_fits_the_lpp() -> None:
    assert outcome(AID, line("SA", 1000 * H100)) == "lpp"


# Case 2: Germany, India, Singapore -------------------------------------------------------
@pytest.mark.parametrize(("country", "aid"), [("DE", "tier1"), ("IN", "lpp"), ("SG", "lpp")])
def test_case_2_no_licence_no_quota(country: str, aid: str) -> None:
    tpp = 1000 * H100
    assert outcome(PRS, line(country, tpp)) == "tier1"
    assert outcome(USC, line(country, tpp)) == "tier1"
    assert outcome(AID, line(country, tpp)) == aid


def test_israel_d4_and_a6_needs_no_licence() -> None:
    assert outcome(PRS, line("IL", H100)) == "tier1"
    assert outcome(USC, line("IL", H100)) == "tier1"


# Cases 3, 4 and 7: headquarters and ultimate parents --------------------------------------
PARTY_CASES = [
    ("consignee in SG, parent CN", line("SG", 10 * H100, cons=consignee("SG", parent="CN")),
     "the consignee's ultimate parent's headquarters CN"),
    ("consignee in SG, headquartered in CN", line("SG", 10 * H100, cons=consignee("SG", "CN")),
     "the consignee's headquarters CN"),
    ("consignee in DE, operator HQ CN",
     line("DE", 10 * H100, OperatorInfo("cn-op", "CN"), consignee("DE")),
     "the operator's headquarters CN"),
    ("operator HQ SG, its parent in RU",
     line("DE", 10 * H100, OperatorInfo("sg-op", "SG", parent_country="RU"), consignee("DE")),
     "the operator's ultimate parent's headquarters RU"),
]


@pytest.mark.parametrize(("label", "request_line", "who"), PARTY_CASES,
                         ids=[c[0] for c in PARTY_CASES])
def test_cases_3_4_7_headquarters_and_parents(label: str, request_line: LineRequest,
                                              who: str) -> None:
    tpp = request_line.tpp
    party = who.rsplit(" ", 1)[1]
    assert outcome(AID, request_line) == [("tier3", "tier3", party, 0, 0, tpp)]
    [decided] = evaluate(AID, [request_line], AT, {}).lines
    assert decided.violations[0].reason.startswith(f"{who} is Tier 3")
    assert decided.violations[0].reason.endswith("(AID-3)")
    for rule_set in (PRS, USC):
        assert outcome(rule_set, request_line) == needs_licence(
            "d5-parties", request_line.destination_country, tpp)
        with_licence = LineRequest(request_line.destination_country, request_line.operator,
                                   request_line.consignee, tpp,
                                   licence(request_line.destination_country))
        assert outcome(rule_set, with_licence) == "license"


# Case 5: the China rule (USC-7) -----------------------------------------------------------
@pytest.mark.parametrize(
    ("chip", "per_chip", "with_licence", "expected"),
    [
        ("H200-SXM", H200, True, "license"),
        ("H20", 2_368, True, "license"),
        ("H200-SXM", H200, False, "needs"),
        ("B200", B200, True, "prohibited"),
        ("B200", B200, False, "prohibited"),
        (None, H200, True, "prohibited"),  # raw TPP: not shown to be under the thresholds
    ],
)
def test_case_5_china_rule(chip: str | None, per_chip: int, with_licence: bool,
                           expected: str) -> None:
    tpp = 100 * per_chip
    request = line("CN", tpp, cons=consignee("CN"), lic=licence("CN") if with_licence else None,
                   chip=chip)
    got = outcome(USC, request)
    if expected == "license":
        assert got == "license"
    elif expected == "needs":
        assert got == needs_licence("china-case-by-case", "CN", tpp)
    else:
        assert got == [("prohibited", "china-prohibited", "CN", 0, 0, tpp)]
    # Under PRS China is D:5: a licence decides; under AID it is Tier 3.
    assert outcome(PRS, request) == ("license" if with_licence else
                                     needs_licence("d5", "CN", tpp))
    assert outcome(AID, request) == [("tier3", "tier3", "CN", 0, 0, tpp)]


def test_case_5_h200_uses_1583200_tpp() -> None:
    assert 100 * (USC.chip_tpp("H200-SXM") or 0) == 1_583_200


# Case 6: the UAE moves to A:5 on 2026-07-10 (USC-8) -----------------------------------------
@pytest.mark.parametrize(
    ("at", "usc"),
    [
        (datetime(2026, 6, 30, tzinfo=UTC), "needs"),
        (datetime(2026, 7, 9, 23, 59, tzinfo=UTC), "needs"),
        (datetime(2026, 7, 10, tzinfo=UTC), "tier1"),
        (datetime(2026, 7, 15, tzinfo=UTC), "tier1"),
    ],
)
def test_case_6_uae_dates(at: datetime, usc: str) -> None:
    tpp = 100 * H100
    request = line("AE", tpp)
    expected = "tier1" if usc == "tier1" else needs_licence("country-groups", "AE", tpp)
    assert outcome(USC, request, at) == expected
    assert outcome(PRS, request, at) == needs_licence("country-groups", "AE", tpp)


def test_uae_approved_entities_within_their_dates() -> None:
    g42 = OperatorInfo("g42", "AE")
    request = line("AE", H100, g42, ConsigneeInfo("ae-lab", "AE", "g42"))
    assert outcome(USC, request, datetime(2026, 7, 15, tzinfo=UTC)) == "tier1"
    assert outcome(USC, request, datetime(2026, 6, 30, tzinfo=UTC)) == needs_licence(
        "country-groups", "AE", H100)
    # Still a party owned from D:5 needs a licence (USC-4 comes first).
    owned = line("AE", H100, g42, ConsigneeInfo("ae-2", "AE", "g42", parent_country="CN"))
    assert outcome(USC, owned, datetime(2026, 7, 15, tzinfo=UTC)) == needs_licence(
        "d5-parties", "AE", H100)
    assert USC.entity_covers("uae_approved", "g42", None, "AE", date(2027, 4, 6))
    assert not USC.entity_covers("uae_approved", "g42", None, "AE", date(2027, 4, 7))


# Cambodia leaves D:5, stays in D:1 (USC-9) --------------------------------------------------
@pytest.mark.parametrize("name", ["PRS", "USC"])
def test_cambodia_before_and_after(name: str) -> None:
    rule_set = SETS[name]
    before, after = datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    assert outcome(rule_set, line("KH", H100), before) == needs_licence("d5", "KH", H100)
    assert outcome(rule_set, line("KH", H100), after) == needs_licence("country-groups", "KH",
                                                                       H100)
    kh_owned = line("DE", H100, OperatorInfo("kh-op", "KH"), consignee("DE"))
    assert outcome(rule_set, kh_owned, before) == needs_licence("d5-parties", "DE", H100)
    assert outcome(rule_set, kh_owned, after) == "tier1"
    assert rule_set.tier("KH", before) == 3 and rule_set.tier("KH", after) == 1


# Case 8: AIA only for parties headquartered in Tier 1 (AID-5) ------------------------------------
def test_case_8_indian_operator_to_germany_is_a_tier2_line_without_allocation() -> None:
    india_op = OperatorInfo("in-op", "IN")
    lpp_line = line("DE", 1000 * H100, india_op, consignee("DE"))
    [decided] = evaluate(AID, [lpp_line], AT, {}).lines
    assert decided.path == "lpp"
    big = line("DE", 2000 * H100, india_op, consignee("DE"), licence("DE"))
    [licensed] = evaluate(AID, [big], AT, {}).lines
    assert licensed.path == "license"
    assert COUNTRY_ALLOCATION not in {d.bucket.kind for d in licensed.draws}
    no_licence = line("DE", 2000 * H100, india_op, consignee("DE"))
    assert [v[0] for v in outcome(AID, no_licence)] == ["lpp", "license_required"]
    # A Tier 1 consignee whose parent is Tier 2 does not get AIA either.
    sg_parent = line("DE", H100, US_OP, consignee("DE", parent="SG"))
    assert outcome(AID, sg_parent) == "lpp"


# Case 9: a UVEU must be headquartered in Tier 1 (AID-4) --------------------------------------
def test_case_9_uveu_eligibility() -> None:
    on = date(2026, 9, 1)
    assert operator_eligibility_errors(AID, OperatorInfo("h", "US", "UVEU"), on) == []
    [error] = operator_eligibility_errors(AID, OperatorInfo("h", "IN", "UVEU"), on)
    assert "Tier 1" in error and "IN" in error and "AID-4" in error
    [error] = operator_eligibility_errors(AID, OperatorInfo("h", "GB", "UVEU",
                                                            parent_country="CN"), on)
    assert "ultimate parent" in error
    assert operator_eligibility_errors(AID, OperatorInfo("h", "IN", "NVEU", "IN"), on) == []
    assert operator_eligibility_errors(PRS, OperatorInfo("h", "IN", "UVEU"), on) == []


def test_an_ineligible_uveu_is_decided_as_an_ordinary_operator() -> None:
    stored = OperatorInfo("h", "IN", "UVEU", footprint={"US": 10**9})
    assert outcome(AID, line("SG", H100, stored)) == "lpp"
