"""Small builders for policy-engine tests (lines, operators, balances)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime

from ledger.policy import RuleSet, evaluate, load_rule_set
from ledger.policy.types import (
    Balance,
    BucketKey,
    ConsigneeInfo,
    Decision,
    LicenseInfo,
    LineRequest,
    OperatorInfo,
)

DIFFUSION = load_rule_set("ai-diffusion-2025")
RESCINDED = load_rule_set("post-rescission-2025")
H100 = 15_832
LPP_CAP = 26_900_000
ALLOCATION_CAP = 790_000_000
AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def operator(
    op_id: str = "op",
    hq: str = "US",
    veu: str | None = None,
    veu_country: str | None = None,
    footprint: Mapping[str, int] | None = None,
) -> OperatorInfo:
    return OperatorInfo(op_id, hq, veu, veu_country, dict(footprint or {}))


def uveu(op_id: str = "hyper", hq: str = "US", **footprint: int) -> OperatorInfo:
    return operator(op_id, hq, "UVEU", None, footprint)


def nveu(op_id: str = "g42", country: str = "AE", hq: str = "AE") -> OperatorInfo:
    return operator(op_id, hq, "NVEU", country)


def consignee(
    c_id: str | None = None, country: str = "SG", group: str | None = None
) -> ConsigneeInfo:
    return ConsigneeInfo(c_id or f"{country.lower()}-lab", country, None, group)


def licence(
    l_id: str = "L1",
    country: str = "SG",
    tpp: int = 10**9,
    consignee_id: str | None = None,
    valid_from: date = date(2025, 1, 1),
    valid_to: date = date(2027, 12, 31),
) -> LicenseInfo:
    return LicenseInfo(l_id, country, consignee_id, tpp, valid_from, valid_to)


def line(
    dest: str = "SG",
    tpp: int = H100,
    op: OperatorInfo | None = None,
    cons: ConsigneeInfo | None = None,
    lic: LicenseInfo | None = None,
) -> LineRequest:
    return LineRequest(dest, op or operator(hq="SG"), cons or consignee(country=dest), tpp, lic)


def decide(
    lines: Sequence[LineRequest],
    balances: Mapping[BucketKey, Balance] | None = None,
    at: datetime = AT,
    rule_set: RuleSet = DIFFUSION,
) -> Decision:
    return evaluate(rule_set, lines, at, dict(balances or {}))
