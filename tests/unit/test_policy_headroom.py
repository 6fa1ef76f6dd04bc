"""Headroom: which buckets apply to a query and their caps (UVEU shares included)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ledger.policy import footprint_from_balances, headroom_buckets, headroom_needs
from ledger.policy.types import (
    COUNTRY_ALLOCATION,
    LICENSE,
    LPP,
    NVEU,
    Balance,
    BucketKey,
    HeadroomBucket,
)

from .policy_fixtures import (
    AT,
    DIFFUSION,
    RESCINDED,
    consignee,
    licence,
    nveu,
    operator,
    uveu,
)

SG_ALLOC = BucketKey(COUNTRY_ALLOCATION, "SG", "2025-2027", country="SG")


def _summary(entries: list[HeadroomBucket]) -> list[tuple[str, str, int | None]]:
    return [(e.kind, e.key, e.cap) for e in entries]


def test_example_1_headroom_lists_allocation_and_lpp() -> None:
    entries = headroom_buckets(DIFFUSION, "SG", None, consignee("sg-lab", "SG"), [], AT)
    assert _summary(entries) == [
        ("country_allocation", "SG", 790_000_000),
        ("lpp", "consignee:sg-lab", 26_900_000),
    ]
    assert entries[0].bucket == SG_ALLOC
    assert entries[1].bucket == BucketKey(LPP, "consignee:sg-lab", "2026")
    # available = cap - committed - held: 1,432 after 1,699 H100.
    cap = entries[1].cap
    assert cap is not None and cap - 1699 * 15_832 == 1_432


def test_licences_listed_only_when_usable() -> None:
    lics = [
        licence("ok", "SG"),
        licence("mine", "SG", consignee_id="sg-lab"),
        licence("theirs", "SG", consignee_id="sg-other"),
        licence("expired", "SG", valid_to=date(2026, 5, 31)),
        licence("future", "SG", valid_from=date(2026, 6, 2)),
        licence("elsewhere", "MY"),
    ]
    entries = headroom_buckets(DIFFUSION, "SG", None, consignee("sg-lab", "SG"), lics, AT)
    assert [(e.kind, e.key) for e in entries if e.kind == LICENSE] == [
        ("license", "ok"),
        ("license", "mine"),
    ]
    no_consignee = headroom_buckets(DIFFUSION, "SG", None, None, lics, AT)
    assert [e.key for e in no_consignee if e.kind == LICENSE] == ["ok", "mine", "theirs"]


def test_nveu_entry_for_its_own_country_only() -> None:
    g42 = nveu("g42", "AE")
    entries = headroom_buckets(DIFFUSION, "AE", g42, None, [], datetime(2025, 12, 31, tzinfo=UTC))
    assert _summary(entries) == [
        ("country_allocation", "AE", 790_000_000),
        ("nveu", "g42:AE", 1_583_200_000),
    ]
    assert entries[1].bucket == BucketKey(NVEU, "g42:AE", "all", operator_id="g42", country="AE")
    assert [e.kind for e in headroom_buckets(DIFFUSION, "SA", g42, None, [], AT)] == [
        "country_allocation"
    ]


def test_uveu_shares_for_a_tier2_country() -> None:
    hyper = uveu("hyper", "US")
    entries = headroom_buckets(DIFFUSION, "SG", hyper, None, [], AT, footprint={"US": 10**9})
    # A UVEU line draws no allocation and no LPP (AID-4): only its ratios bind.
    assert _summary(entries) == [
        ("uveu", "SG", 75_268_817),  # example 4
        ("uveu", "tier1", 333_333_333),
        ("uveu", "US", 1_000_000_000),
    ]
    fp = BucketKey("footprint", "hyper:SG", "all", operator_id="hyper", country="SG")
    assert all(e.bucket == fp for e in entries if e.kind == "uveu")


def test_uveu_share_caps_count_recorded_use_in_the_country() -> None:
    # With 10 TPP already in SG, the SG bucket may reach floor(7 * 1e9 / 93) = 75,268,817
    # in total: the cap is on committed + held, so available stays exact.
    hyper = uveu("hyper", "US")
    recorded = {"US": 10**9, "SG": 10}
    entries = headroom_buckets(DIFFUSION, "SG", hyper, None, [], AT, footprint=recorded)
    assert ("uveu", "SG", 75_268_817) in _summary(entries)


def test_uveu_declared_footprint_counts_but_is_not_in_the_bucket() -> None:
    # Declared 10 in SG (pre-ledger): the SG bucket itself may then reach 10 less.
    hyper = uveu("hyper", "US", US=10**9, SG=10)
    entries = headroom_buckets(DIFFUSION, "SG", hyper, None, [], AT, footprint={})
    assert ("uveu", "SG", 75_268_807) in _summary(entries)


def test_uveu_example_5_us_share_for_a_tier1_country() -> None:
    hyper = uveu("hyper", "US")
    entries = headroom_buckets(
        DIFFUSION, "DE", hyper, None, [], AT, footprint={"US": 10**9, "SG": 75_268_817}
    )
    assert _summary(entries) == [("uveu", "US", 924_731_183)]
    assert headroom_buckets(DIFFUSION, "US", hyper, None, [], AT, footprint={"US": 1}) == []


def test_uveu_broken_ratio_shows_no_room() -> None:
    hyper = uveu("hyper", "US")
    entries = headroom_buckets(DIFFUSION, "SG", hyper, None, [], AT, footprint={"SG": 500})
    assert _summary(entries) == [
        ("uveu", "SG", 500),
        ("uveu", "tier1", 500),
        ("uveu", "US", 500),
    ]


@pytest.mark.parametrize("country", ["CN", "MO", "RU"])
def test_tier3_has_no_headroom(country: str) -> None:
    assert headroom_buckets(DIFFUSION, country, None, None, [licence("L", country)], AT) == []


def test_tier3_headquarters_has_no_headroom() -> None:
    cn_op = operator("cn-op", "CN")
    assert headroom_buckets(DIFFUSION, "MY", cn_op, consignee(country="MY"), [], AT) == []


def test_post_rescission_headroom() -> None:
    lic = licence("L-CN", "CN", 5)
    assert _summary(headroom_buckets(RESCINDED, "CN", None, None, [lic], AT)) == [
        ("license", "L-CN", 5)
    ]
    assert headroom_buckets(RESCINDED, "SG", uveu(), consignee(), [], AT) == []


def test_headroom_needs_matches_headroom_buckets() -> None:
    hyper = uveu("hyper", "US")
    lic = licence("L", "SG")
    cons = consignee("a1", "SG", group="g")
    needed = headroom_needs(DIFFUSION, "SG", hyper, cons, [lic], AT)
    assert needed.buckets == {
        BucketKey("footprint", "hyper:SG", "all", operator_id="hyper", country="SG"),
    }
    assert needed.footprint_of == {"hyper"}
    plain = headroom_needs(DIFFUSION, "SG", operator("op", "SG"), cons, [lic], AT)
    assert plain.buckets == {
        SG_ALLOC,
        BucketKey(LPP, "group:g", "2026"),
        BucketKey(LICENSE, "L", "all", country="SG"),
    }
    assert headroom_needs(DIFFUSION, "SG", None, None, [], AT).footprint_of == frozenset()


def test_footprint_from_balances_sums_one_operators_buckets() -> None:
    balances = {
        BucketKey("footprint", "h:US", "all", operator_id="h", country="US"): Balance(5, 2),
        BucketKey("footprint", "h:SG", "all", operator_id="h", country="SG"): Balance(1, 0),
        BucketKey("footprint", "x:US", "all", operator_id="x", country="US"): Balance(100, 0),
        SG_ALLOC: Balance(50, 0),
    }
    assert footprint_from_balances(balances, "h") == {"US": 7, "SG": 1}
