"""Group commit: many commands in one transaction, each answered on its own,
with the caps, the chain and idempotency as correct as one at a time."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger.audit import balances_from_entries, projected_balances, verify_chain
from ledger.clock import SystemClock
from ledger.errors import InvalidInput, LedgerError
from ledger.group_commit import GroupCommitter
from ledger.policy.ruleset import load_rule_set
from ledger.service import Ledger
from ledger.store.engine import create_ledger_engine
from ledger.views import ReserveCommand
from tests.factories import H100, consignee, line, operator

LPP_CAP = 26_900_000


def _seed(ledger: Ledger) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")


def _cmd(i: int, quantity: int = 1, actor: str = "v") -> ReserveCommand:
    return ReserveCommand(actor, (line("SG", "sg-lab", quantity=quantity),), 86400, f"k{i}")


def test_same_key_twice_in_one_batch_holds_once(ledger: Ledger) -> None:
    _seed(ledger)
    first, again, other = ledger.execute([_cmd(1), _cmd(1), _cmd(1, quantity=2)])
    assert first.reservation and again.reservation  # type: ignore[union-attr]
    assert again.replayed and again.reservation.id == first.reservation.id  # type: ignore[union-attr]
    assert isinstance(other, LedgerError) and other.code == "idempotency_key_reused"
    assert verify_chain(ledger.engine).entries == 1


def test_committer_answers_each_command_on_its_own(ledger: Ledger) -> None:
    _seed(ledger)
    committer = GroupCommitter(ledger, max_wait=0.05)
    try:
        futures = [
            committer.submit(_cmd(1, quantity=1000)),
            committer.submit(_cmd(2, quantity=1000)),  # denied: over LPP after the first
            committer.submit(ReserveCommand("v", (line("SG", "sg-lab", tpp=0),), 60, "k3")),
            committer.submit(_cmd(4, quantity=699)),
        ]
        results = [f.result(timeout=10) for f in futures]
    finally:
        committer.close()
    assert results[0].held and not results[1].held and results[3].held  # type: ignore[union-attr]
    assert isinstance(results[2], InvalidInput) and results[2].field == "lines[0].tpp"
    assert committer.stats.batches == 1 and committer.stats.largest == 4
    assert verify_chain(ledger.engine).entries == 2


def test_poisonous_command_fails_alone(pg_url: str) -> None:
    engine = create_ledger_engine(pg_url)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"), SystemClock())
    _seed(ledger)
    committer = GroupCommitter(ledger, max_wait=0.05)
    try:
        good = committer.submit(_cmd(1))
        bad = committer.submit(_cmd(2, actor="nul\x00actor"))  # PostgreSQL refuses NUL
        also_good = committer.submit(_cmd(3))
        assert good.result(10).held  # type: ignore[union-attr]
        assert isinstance(bad.result(10), LedgerError)
        assert also_good.result(10).held  # type: ignore[union-attr]
    finally:
        committer.close()
        engine.dispose()


@pytest.mark.slow
def test_postgres_race_with_group_commit(pg_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    engine = create_ledger_engine(pg_url)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"), SystemClock())
    _seed(ledger)
    committer = GroupCommitter(ledger)
    attempts, workers = 2000, 32

    def attempt(i: int) -> int:
        out = committer.run(_cmd(i))
        return out.reservation.tpp if out.held else 0  # type: ignore[union-attr]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        accepted = list(pool.map(attempt, range(attempts)))
    elapsed = time.perf_counter() - started
    committer.close()

    total = sum(accepted)
    assert total == (LPP_CAP // H100) * H100  # 1,699 fit, exactly
    key = next(k for k in projected_balances(engine) if k[0] == "lpp")
    assert projected_balances(engine)[key] == balances_from_entries(engine)[key] == (0, total)
    assert verify_chain(engine).entries == total // H100
    assert committer.stats.largest > 1  # batches really formed
    with capsys.disabled():
        print(
            f"\n[race postgres, group commit] workers={workers} attempts={attempts} "
            f"accepted={total // H100} cap={LPP_CAP} time={elapsed:.2f}s "
            f"batches={committer.stats.batches} mean_batch={committer.stats.mean:.1f} "
            f"largest={committer.stats.largest}"
        )
    engine.dispose()


def test_a_lone_client_does_not_wait_for_company(ledger: Ledger) -> None:
    _seed(ledger)
    committer = GroupCommitter(ledger, max_wait=0.05)
    try:
        assert committer.submit(_cmd(1)).result(timeout=10).held  # type: ignore[union-attr]
        # The last batch held one command: the next one is not held back for max_wait
        # (an hour here; the 10 s timeout would fire long before it).
        committer.max_wait = 3600
        assert committer.submit(_cmd(2)).result(timeout=10).held  # type: ignore[union-attr]
        assert committer.stats.batches == 2 and committer.stats.largest == 1
    finally:
        committer.close()
