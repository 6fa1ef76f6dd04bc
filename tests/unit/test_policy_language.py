"""The rule-set language beyond the built-in sets: units in equivalents of a reference chip,
quarter periods, per-country quotas with an entity's sub-quota, and dated groups."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.policy import bucket_cap, evaluate, headroom_buckets, needs, parse_rule_set
from ledger.policy.types import BucketKey, ConsigneeInfo, LineRequest, OperatorInfo

PROV = '{ source = "a draft reported in March 2026", date = 2026-03-15, status = "draft" }'
DRAFT = f"""
name = "draft-2026"
version = "1"
effective_from = 2026-03-01

[groups.tier1]
title = "Tier 1"
rule = "D-1"
[[groups.tier1.members]]
countries = ["US"]
provenance = {PROV}

[groups.capped]
title = "capped countries"
rule = "D-1"
complement_of = ["tier1"]
provenance = {PROV}

[entities.big_lab]
title = "Big Lab"
rule = "D-3"
operators = ["big"]
provenance = {PROV}

[quotas.per_country]
kind = "country_quarter"
rule = "D-2"
title = "per-country quota"
scope = "country"
period = "quarter"
unit = {{ equivalents_of = "GB300" }}
cap = 1_000
applies_when = {{ destination_in = ["capped"] }}
sub_quotas = [{{ entity = "big_lab", cap = 200, provenance = {PROV} }}]
provenance = {PROV}

[[steps]]
id = "free"
rule = "D-1"
when = {{ destination_in = ["tier1"] }}
outcome = "allowed"
path = "tier1"
reason = "Tier 1"

[[steps]]
id = "quota"
rule = "D-2"
outcome = "allowed"
path = "lpp"
quotas = ["per_country"]
reason = "within the country's quarterly quota"

[[steps]]
id = "licence"
rule = "D-4"
outcome = "license_required"
reason = "above the quota"
""".encode()

RULES = parse_rule_set(DRAFT, "draft.toml")
GB300 = 60_000
AT = datetime(2026, 5, 15, tzinfo=UTC)
SG = BucketKey("country_quarter", "SG", "2026Q2", country="SG")
SG_BIG = BucketKey("country_quarter", "SG/big_lab", "2026Q2", country="SG")


def _line(op: str, tpp: int) -> LineRequest:
    return LineRequest("SG", OperatorInfo(op, "US"), ConsigneeInfo("sg-1", "SG", op), tpp)


def test_caps_in_equivalents_are_exact_products_and_quarters_are_periods() -> None:
    assert bucket_cap(RULES, SG, AT, {}) == 1_000 * GB300
    assert bucket_cap(RULES, SG_BIG, AT, {}) == 200 * GB300
    assert needs(RULES, [_line("small", 1)], AT).buckets >= {SG}
    assert SG_BIG in needs(RULES, [_line("big", 1)], AT).buckets
    assert RULES.not_firm()[0] == "groups.tier1.US"


def test_an_entity_draws_its_sub_quota_and_the_country_quota() -> None:
    [ok] = evaluate(RULES, [_line("big", 200 * GB300)], AT, {}).lines
    assert ok.path == "lpp"
    assert [(d.bucket, d.cap) for d in ok.draws[:2]] == [(SG, 60_000_000), (SG_BIG, 12_000_000)]
    [over] = evaluate(RULES, [_line("big", 200 * GB300 + 1)], AT, {}).lines
    assert [(v.constraint, v.rule, v.key, v.cap) for v in over.violations] == [
        ("country_quarter", "quota", "SG/big_lab", 12_000_000),
        ("license_required", "licence", "SG", 0),
    ]
    assert over.violations[0].reason.endswith("(D-2)")
    [other] = evaluate(RULES, [_line("small", 200 * GB300 + 1)], AT, {}).lines
    assert other.path == "lpp"


def test_headroom_shows_the_same_buckets_and_caps() -> None:
    entries = headroom_buckets(RULES, "SG", OperatorInfo("big", "US"),
                               ConsigneeInfo("sg-1", "SG", "big"), [], AT)
    assert [(e.bucket, e.cap) for e in entries] == [(SG, 60_000_000), (SG_BIG, 12_000_000)]
    assert headroom_buckets(RULES, "US", None, None, [], AT) == []
