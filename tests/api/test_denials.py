"""Denials explain themselves (issue 9, defect 6): every violation names the rule-set step
(`rule`) and says why (`reason`); a missing licence is `license_required`, never a cap."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import H100, Api, line, seed_consignee, seed_license, seed_operator

PROBLEMS = "https://tpp-ledger.dev/problems/"


def _denied(api: Api, lines: list[dict[str, Any]], key: str) -> dict[str, Any]:
    r = api.reserve(lines, key=key)
    assert r.status_code == 409, r.text
    body: dict[str, Any] = r.json()
    for v in body["violations"]:
        assert v["rule"] and v["reason"], v
    return body


def test_tier3_is_not_a_quota_and_names_the_party(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "cn-dc", "CN")
    body = _denied(api, [line("CN", "cn-dc")], "t3")
    assert body["type"] == PROBLEMS + "not-permitted"
    assert body["title"] == "Not permitted"
    [v] = body["violations"]
    assert (v["constraint"], v["rule"], v["key"]) == ("tier3", "tier3", "CN")
    assert "destination CN is Tier 3" in v["reason"]
    assert "Tier 3" in body["detail"]


def test_tier3_by_headquarters_says_whose(api: Api) -> None:
    seed_operator(api, "cn-op", hq="CN")
    seed_consignee(api, "my-dc", "MY", operator_id="cn-op")
    [v] = _denied(api, [line("MY", "my-dc", "cn-op")], "hq")["violations"]
    assert v["constraint"] == "tier3" and "headquarters" in v["reason"]


def test_missing_licence_is_license_required_beside_the_cap_that_bound(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "sg-lab", "SG")
    body = _denied(api, [line("SG", "sg-lab", quantity=1_700)], "lpp")
    assert body["type"] == PROBLEMS + "quota-exceeded"  # the LPP cap did bind
    lpp, needed = body["violations"]
    assert (lpp["constraint"], lpp["rule"], lpp["cap"]) == ("lpp", "lpp", 26_900_000)
    assert "26,900,000" in lpp["reason"] and f"{1_700 * H100:,}" in lpp["reason"]
    assert (needed["constraint"], needed["rule"]) == ("license_required", "license")
    assert (needed["key"], needed["cap"], needed["used"]) == ("SG", 0, 0)
    assert "licence is required" in needed["reason"]


def test_a_licence_that_does_not_cover_the_line_says_why(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "sg-lab", "SG")
    seed_consignee(api, "sg-two", "SG")
    seed_license(api, "L-other", "SG", 10**9, consignee_id="sg-two")
    body = _denied(api, [line("SG", "sg-lab", quantity=1_700, license_id="L-other")], "lic")
    licence = next(v for v in body["violations"] if v["constraint"] == "license")
    assert licence["key"] == "L-other" and licence["cap"] == 0
    assert "names consignee sg-two" in licence["reason"]


def test_post_rescission_tier3_without_licence_is_not_a_quota(start_api: Any,
                                                              sqlite_url: str) -> None:
    api = start_api(sqlite_url, rule_set="post-rescission-2025")
    seed_operator(api)
    seed_consignee(api, "cn-dc", "CN")
    body = _denied(api, [line("CN", "cn-dc")], "pr")
    assert body["type"] == PROBLEMS + "not-permitted"
    [v] = body["violations"]
    assert (v["constraint"], v["rule"], v["key"], v["cap"]) == ("license_required", "d5",
                                                                "CN", 0)


def test_evaluate_gives_the_same_explanations(api: Api) -> None:
    seed_operator(api)
    seed_consignee(api, "cn-dc", "CN")
    r = api.post("/v1/evaluate", {"lines": [line("CN", "cn-dc")]}, role="vendor")
    assert r.status_code == 200, r.text
    [v] = r.json()["violations"]
    assert v["rule"] == "tier3" and "Tier 3" in v["reason"]
