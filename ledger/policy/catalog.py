"""The chip catalog shared by every rule set (chips.toml), with a rule set's overrides.

A chip's TPP, die area and DRAM bandwidth are facts about the chip, not about
any one rule (AID-1), so they live once; a rule set may override a doubtful
value (e.g. MI350X once ruled on) or add a chip in its own [[chips]].
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from ledger.policy.schema import ChipSpec
from ledger.units import Classification, classify_3a090, exact


@dataclass(frozen=True)
class Chip:
    """One catalog entry: model id -> TPP per package, die area and DRAM bandwidth when known."""

    id: str
    name: str
    tpp: int
    die_area_mm2: Fraction | None
    dram_bandwidth_gbs: int | None
    sure: str  # status of the TPP value: firm | likely | reported | ...
    note: str = ""
    bandwidth_sure: str | None = None

    @property
    def classification(self) -> Classification | None:
        """Its ECCN 3A090 class, or None when the die area is needed but unknown."""
        try:
            return classify_3a090(self.tpp, self.die_area_mm2)
        except ValueError:
            return None

    @property
    def performance_density(self) -> Fraction | None:
        """TPP / die area (mm^2), exact; None without a die area."""
        return None if self.die_area_mm2 is None else Fraction(self.tpp) / self.die_area_mm2


def chip_of(spec: ChipSpec) -> Chip:
    return Chip(
        id=spec.id,
        name=spec.name,
        tpp=spec.tpp,
        die_area_mm2=None if spec.die_area_mm2 is None else exact(spec.die_area_mm2),
        dram_bandwidth_gbs=spec.dram_bandwidth_gbs,
        sure=spec.provenance.status,
        note=spec.provenance.note,
        bandwidth_sure=None if spec.bandwidth_provenance is None
        else spec.bandwidth_provenance.status,
    )


def merged(shared: Iterable[ChipSpec], overrides: Iterable[ChipSpec]) -> tuple[ChipSpec, ...]:
    """The shared catalog in its order, each id replaced by the rule set's entry when it has
    one; the rule set's new ids follow."""
    mine = {spec.id: spec for spec in overrides}
    out = [mine.pop(spec.id, spec) for spec in shared]
    return (*out, *mine.values())
