"""A separate process hammering one bucket (spawned by the SQLite race test)."""

from __future__ import annotations

from ledger.policy.ruleset import load_rule_set
from ledger.service import Ledger
from ledger.store.engine import create_ledger_engine
from ledger.views import LineInput, ReserveCommand


def hammer(url: str, attempts: int, tpp: int, worker: int) -> tuple[int, int]:
    """Tries `attempts` one-line reservations; returns (accepted count, accepted TPP)."""
    engine = create_ledger_engine(url)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"))
    accepted = 0
    for i in range(attempts):
        out = ledger.reserve(
            ReserveCommand(
                f"w{worker}",
                (LineInput("SG", "op1", "sg-lab", tpp=tpp),),
                3600 * 24,
                f"w{worker}-{i}",
            )
        )
        accepted += out.held
    engine.dispose()
    return accepted, accepted * tpp
