"""Total Processing Performance (TPP) and ECCN 3A090 classification.

All arithmetic is exact (`fractions.Fraction`); floats are refused, because a
float datasheet figure such as 989.4 is not 989.4 and a threshold comparison
must not depend on binary rounding.

The chip catalog (model id -> TPP) is data in the rule-set file; this module
only turns datasheet figures into TPP and classifies a chip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

Exact = int | str | Decimal | Fraction
"""A number given exactly: an int, a decimal string ("989.4"), a Decimal or a Fraction."""

Classification = Literal["3A090.a", "3A090.b", "outside"]


def exact(value: object, what: str = "value") -> Fraction:
    """`value` as an exact Fraction; raises TypeError for floats/bools, ValueError otherwise bad."""
    if isinstance(value, (bool, float)):
        raise TypeError(f"{what}: {value!r} is not exact; give an int, decimal string or Decimal")
    if isinstance(value, int | Fraction):
        return Fraction(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{what}: {value!r} is not finite")
        return Fraction(value)
    if isinstance(value, str):
        try:
            return Fraction(value.strip().replace("_", ""))
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"{what}: {value!r} is not a decimal number") from exc
    raise TypeError(f"{what}: {value!r} is not a number")


@dataclass(frozen=True)
class FormatSpec:
    """One datasheet line: peak TOPS (or TFLOPS) for a number format of `bit_length` bits.

    `sparse=True` marks a figure quoted with structured sparsity; the rule uses
    dense figures, so it is halved.
    """

    tops: Exact
    bit_length: int
    sparse: bool = False


def _as_spec(item: FormatSpec | Mapping[str, object]) -> FormatSpec:
    if isinstance(item, FormatSpec):
        return item
    bits = item["bit_length"]
    if not isinstance(bits, int) or isinstance(bits, bool):
        raise TypeError(f"bit_length: {bits!r} is not an int")
    tops = item["tops"]
    if not isinstance(tops, int | str | Decimal | Fraction) or isinstance(tops, bool):
        raise TypeError(f"tops: {tops!r} is not exact")
    return FormatSpec(tops=tops, bit_length=bits, sparse=bool(item.get("sparse", False)))


def tpp_exact(specs: Iterable[FormatSpec | Mapping[str, object]]) -> Fraction:
    """The exact TPP: max over formats of dense TOPS x bit length (TPP = 2 x MacTOPS x bits).

    Raises ValueError when no format is given or a figure is not positive.
    """
    best: Fraction | None = None
    for raw in specs:
        spec = _as_spec(raw)
        tops = exact(spec.tops, "tops")
        if tops <= 0 or spec.bit_length <= 0:
            raise ValueError(f"tops and bit_length must be positive, got {spec!r}")
        dense = tops / 2 if spec.sparse else tops
        value = dense * spec.bit_length
        best = value if best is None or value > best else best
    if best is None:
        raise ValueError("at least one format spec is needed")
    return best


def tpp_from_specs(specs: Iterable[FormatSpec | Mapping[str, object]]) -> int:
    """TPP as a whole number: the exact TPP rounded DOWN, as published figures are
    (MI300X: exactly 20,919.2, published and catalogued as 20,919).

    The catalog and this function must round the same way, or the same chip
    would draw two different amounts. Rounding down never misclassifies: every
    control threshold is a whole TPP (4,800, 1,600, 21,000, ...), and for a
    whole T, floor(x) >= T exactly when x >= T. (Rounding up would put a chip
    of 4,799.5 over 4,800.) A chip draws less than a whole TPP below its exact
    value per package. An integral exact TPP is returned unchanged.
    """
    value = tpp_exact(specs)
    return value.numerator // value.denominator


@dataclass(frozen=True)
class Thresholds3A090:
    """The ECCN 3A090 parameters (TPP and performance density = TPP / die area in mm^2)."""

    a_tpp: int
    a_min_tpp_dense: int
    a_density: Fraction
    b_tpp_low: int
    b_density_low: Fraction
    b_min_tpp_dense: int
    b_density_mid: Fraction


# The ECCN 3A090 definition itself (15 CFR 774, firm). It is the unit's
# definition, not a quota of any rule set, so it lives with the unit; a rule set
# that changes it can pass its own Thresholds3A090.
ECCN_3A090 = Thresholds3A090(
    a_tpp=4800,
    a_min_tpp_dense=1600,
    a_density=Fraction("5.92"),
    b_tpp_low=2400,
    b_density_low=Fraction("1.6"),
    b_min_tpp_dense=1600,
    b_density_mid=Fraction("3.2"),
)


def classify_3a090(
    tpp: int, die_area_mm2: Exact | None, thresholds: Thresholds3A090 = ECCN_3A090
) -> Classification:
    """Classify a chip as "3A090.a", "3A090.b" or "outside", comparing exactly.

    3A090.a: TPP >= 4800, or TPP >= 1600 with density >= 5.92.
    3A090.b: 2400 <= TPP < 4800 with 1.6 <= density < 5.92, or TPP >= 1600 with
    3.2 <= density < 5.92.
    Without a die area only the TPP-alone cases can be decided (TPP >= 4800:
    .a; TPP < 1600: outside); anything else raises ValueError.
    """
    if not isinstance(tpp, int) or isinstance(tpp, bool) or tpp < 0:
        raise ValueError(f"tpp: {tpp!r} is not a non-negative int")
    th = thresholds
    if tpp >= th.a_tpp:
        return "3A090.a"
    if tpp < min(th.a_min_tpp_dense, th.b_min_tpp_dense, th.b_tpp_low):
        return "outside"
    if die_area_mm2 is None:
        raise ValueError(f"tpp {tpp}: a die area is needed to classify by performance density")
    area = exact(die_area_mm2, "die_area_mm2")
    if area <= 0:
        raise ValueError(f"die_area_mm2: {die_area_mm2!r} is not positive")
    density = Fraction(tpp) / area
    if tpp >= th.a_min_tpp_dense and density >= th.a_density:
        return "3A090.a"
    if th.b_tpp_low <= tpp < th.a_tpp and th.b_density_low <= density < th.a_density:
        return "3A090.b"
    if tpp >= th.b_min_tpp_dense and th.b_density_mid <= density < th.a_density:
        return "3A090.b"
    return "outside"
