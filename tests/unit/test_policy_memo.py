"""The policy's memoized walks: the facts key covers every fact a condition can test."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date
from typing import Any

from ledger.policy.catalog import chip_of
from ledger.policy.conditions import Facts
from ledger.policy.ruleset import load_rule_set
from ledger.policy.types import ConsigneeInfo, OperatorInfo

OP = OperatorInfo("op", "US", "UVEU", None, {"SG": 5}, "US")
CONS = ConsigneeInfo("c", "SG", "op", "g", "SG", "SG")


def _other(value: object) -> Any:
    if isinstance(value, dict):
        return {"DE": 1}
    return "NVEU" if value == "UVEU" else "XX"


def test_changing_any_field_of_the_facts_or_a_party_changes_the_key() -> None:
    rule_set = load_rule_set("ai-diffusion-2025")
    chips = [chip_of(c) for c in rule_set.chip_specs[:2]]
    base = Facts("SG", date(2026, 3, 1), OP, CONS, chips[0], True)
    variants = [replace(base, destination="MY"), replace(base, on=date(2026, 3, 2)),
                replace(base, operator=None), replace(base, consignee=None),
                replace(base, chip=chips[1]), replace(base, chip=None),
                replace(base, chip_known=False)]
    variants += [replace(base, operator=replace(OP, **{f.name: _other(getattr(OP, f.name))}))
                 for f in fields(OperatorInfo)]
    variants += [replace(base, consignee=replace(CONS, **{f.name: _other(getattr(CONS, f.name))}))
                 for f in fields(ConsigneeInfo)]
    keys = [base.key(), *(v.key() for v in variants)]
    assert len(set(keys)) == len(keys)
    assert Facts("SG", date(2026, 3, 1), replace(OP, footprint={"SG": 5}), CONS, chips[0],
                 True).key() == base.key()  # equal facts, equal key (a new dict)
