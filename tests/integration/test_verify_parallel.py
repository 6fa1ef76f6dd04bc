"""Parallel verification gives the plain walk's answer, tampering included."""

from __future__ import annotations

import pytest

from ledger.audit import verify_chain, verify_chain_parallel
from ledger.service import Ledger
from ledger.views import ReserveCommand
from tests.factories import consignee, line, operator


def _fill(ledger: Ledger, n: int) -> None:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    cmds = [ReserveCommand("v", (line("SG", "sg-lab", tpp=100),), 3600, f"k{i}")
            for i in range(n)]
    ledger.execute(cmds)


def _tamper(ledger: Ledger, seq: int) -> None:
    with ledger.engine.begin() as conn:
        if ledger.engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ALTER TABLE entry DISABLE TRIGGER entry_no_update_delete")
        else:
            conn.exec_driver_sql("DROP TRIGGER entry_no_update")
        conn.exec_driver_sql(f"UPDATE entry SET tpp = 99 WHERE seq = {seq}")


def test_parallel_equals_plain_on_an_intact_chain(ledger: Ledger) -> None:
    _fill(ledger, 300)
    plain = verify_chain(ledger.engine)
    parallel = verify_chain_parallel(ledger.engine, processes=3, min_entries=0)
    assert plain.ok and parallel.ok
    assert (parallel.entries, parallel.head) == (plain.entries, plain.head) == (300, plain.head)


@pytest.mark.parametrize("seq", [1, 100, 101, 150, 300])
def test_parallel_names_the_first_bad_seq(ledger: Ledger, seq: int) -> None:
    _fill(ledger, 300)
    _tamper(ledger, seq)
    report = verify_chain_parallel(ledger.engine, processes=3, min_entries=0)
    assert not report.ok and report.first_bad_seq == seq
    assert report.first_bad_seq == verify_chain(ledger.engine).first_bad_seq
