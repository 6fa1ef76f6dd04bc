"""TPP from datasheet figures and ECCN 3A090 classification, exact to the unit."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from ledger.countries import is_known_country
from ledger.units import FormatSpec, classify_3a090, tpp_exact, tpp_from_specs


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        # H100 SXM: FP8 3,958 TFLOPS with sparsity -> 1,979 dense x 8 bits.
        ([FormatSpec(3958, 8, sparse=True)], 15_832),
        ([FormatSpec("1979", 8)], 15_832),
        # The max over formats wins (BF16 989.4 x 16 = 15,830.4 < 15,832).
        ([FormatSpec("989.4", 16), FormatSpec(1979, 8)], 15_832),
        # A fractional TPP rounds DOWN, as the catalog does: 989.4 x 16 = 15,830.4 -> 15,830.
        ([FormatSpec("989.4", 16)], 15_830),
        ([FormatSpec(Decimal("989.4"), 16)], 15_830),
        ([FormatSpec(Fraction(1, 3), 3)], 1),
        ([FormatSpec(Fraction(2, 3), 3)], 2),
        # MI300X: FP8 dense 2,614.9 TFLOPS x 8 = 20,919.2 -> 20,919, the catalog's figure.
        ([FormatSpec("2614.9", 8)], 20_919),
        ([{"tops": "148", "bit_length": 16}], 2_368),  # H20 BF16
        ([{"tops": 296, "bit_length": 8, "sparse": True}], 1_184),
    ],
)
def test_tpp_from_specs(specs: list[FormatSpec], expected: int) -> None:
    assert tpp_from_specs(specs) == expected
    assert isinstance(tpp_from_specs(specs), int)


def test_tpp_exact_keeps_the_fraction() -> None:
    assert tpp_exact([FormatSpec("989.4", 16)]) == Fraction(158304, 10)


@pytest.mark.parametrize(
    "specs",
    [[], [FormatSpec(0, 8)], [FormatSpec(10, 0)], [FormatSpec("-5", 8)], [FormatSpec("abc", 8)]],
)
def test_tpp_from_specs_rejects_bad_figures(specs: list[FormatSpec]) -> None:
    with pytest.raises(ValueError):
        tpp_from_specs(specs)


@pytest.mark.parametrize("tops", [989.4, True])
def test_tpp_from_specs_refuses_inexact_numbers(tops: object) -> None:
    with pytest.raises(TypeError):
        tpp_from_specs([FormatSpec(tops, 16)])  # type: ignore[arg-type]


EXACT_592_AREA = Fraction(1600) / Fraction("5.92")  # density exactly 5.92 at TPP 1600


@pytest.mark.parametrize(
    ("tpp", "area", "expected"),
    [
        (4800, None, "3A090.a"),
        (4799, None, None),  # needs an area
        (1599, None, "outside"),
        (15_832, 814, "3A090.a"),
        (2368, 814, "outside"),  # H20: density 2.91
        (1600, EXACT_592_AREA, "3A090.a"),
        (1600, EXACT_592_AREA + Fraction(1, 10**9), "3A090.b"),  # just under 5.92, over 3.2
        (1599, 1, "outside"),
        (2400, 1500, "3A090.b"),  # density exactly 1.6
        (2400, 1501, "outside"),  # density just under 1.6
        (2399, 1499, "outside"),  # TPP under 2400, density 1.6 < 3.2
        (4799, 1000, "3A090.b"),  # density 4.799
        (4799, Fraction(4799) / Fraction("5.92"), "3A090.a"),
        (1600, 500, "3A090.b"),  # density exactly 3.2
        (1600, 501, "outside"),
        (3000, "600", "3A090.b"),  # density 5: both .b branches
        (3000, "506.75", "3A090.a"),  # density 5.92009...
    ],
)
def test_classify_3a090(tpp: int, area: object, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            classify_3a090(tpp, area)  # type: ignore[arg-type]
    else:
        assert classify_3a090(tpp, area) == expected  # type: ignore[arg-type]


def test_density_1600_just_under_592_is_b_when_over_32() -> None:
    # 1600 / 270.3 = 5.9193... : not .a, but >= 3.2 so .b.
    assert classify_3a090(1600, "270.3") == "3A090.b"


def test_classify_refuses_float_area() -> None:
    with pytest.raises(TypeError):
        classify_3a090(2000, 400.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "known"),
    [
        ("US", True),
        ("TW", True),
        ("MO", True),
        ("HK", True),
        ("XK", False),
        ("us", False),
        ("USA", False),
        ("", False),
        (None, False),
        ("ZZ", False),
    ],
)
def test_is_known_country(code: object, known: bool) -> None:
    assert is_known_country(code) is known


def test_catalog_and_specs_round_the_same_way() -> None:
    """MI300X and MI325X are exactly 20,919.2 TPP: the catalog and the computation from
    specifications must give the same whole figure, or one chip would draw two amounts."""
    from ledger.policy.ruleset import load_rule_set

    computed = tpp_from_specs([FormatSpec("2614.9", 8)])
    for name in ("ai-diffusion-2025", "post-rescission-2025", "us-controls-2026"):
        rs = load_rule_set(name)
        assert rs.chip_tpp("MI300X") == rs.chip_tpp("MI325X") == computed == 20_919


@pytest.mark.parametrize(("tops", "expected"), [("599.9375", "outside"), ("600", "a")])
def test_rounding_down_never_moves_a_chip_across_a_threshold(tops: str, expected: str) -> None:
    """4,799.5 TPP is under the 4,800 of 3A090.a; rounding up would have put it over."""
    tpp = tpp_from_specs([FormatSpec(tops, 8)])
    exact_tpp = tpp_exact([FormatSpec(tops, 8)])
    assert (tpp >= 4_800) == (exact_tpp >= 4_800)
    assert (tpp >= 4_800) == (expected == "a")
