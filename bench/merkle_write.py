"""Write-path cost of the Merkle node table (issue 11): `python -m bench.merkle_write
[--batch 200] [--rounds 8] [--seconds 8]`.

Ledger.execute throughput (batches of one-line holds, one entry each, PostgreSQL
with durable commits, a fresh database) in interleaved rounds of three modes:
- none: the write path as shipped, nodes not stored;
- catch-up: the same while another process runs `catch_up` every second (the
  merkle_nodes job's work, at 30 times its default rate);
- in-txn: the rejected alternative, nodes inserted by the write transaction's
  flush (monkeypatched here; the frontier is kept across transactions).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.seed import COUNTRY, LINE_TPP, consignee_id, fresh_database, seed
from ledger.clock import SystemClock
from ledger.merkle import MerkleFrontier, leaf_hash
from ledger.merkle_store import MERKLE_NODE, catch_up, frontier_at
from ledger.policy.ruleset import load_rule_set
from ledger.service import Ledger
from ledger.store import txn as txnmod
from ledger.store.engine import create_ledger_engine
from ledger.views import LineInput, ReserveCommand


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.merkle_write")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    url = fresh_database(args.postgres, "ledger_bench_merkle_write")
    seed(url)
    engine = create_ledger_engine(url)
    ledger = Ledger(engine, load_rule_set("ai-diffusion-2025"), SystemClock())
    plain_flush, plain_order = txnmod.WriteTxn.flush, txnmod.INSERT_ORDER
    kept: dict[str, MerkleFrontier] = {}

    def flush_with_nodes(self: Any) -> None:
        frontier = kept.get("f")
        if frontier is None or frontier.size != self._start_seq:
            frontier = frontier_at(self.session, self._start_seq)
        frontier = frontier.copy()
        nodes = []
        for row in self._rows[txnmod.ENTRY]:
            nodes.extend(frontier.append_nodes(leaf_hash(row["hash"])))
        self._rows[MERKLE_NODE] = [{"level": lv, "idx": i, "hash": h} for lv, i, h in nodes]
        plain_flush(self)
        kept["f"] = frontier

    counter = [0]

    def batch() -> None:
        cmds = []
        for _ in range(args.batch):
            counter[0] += 1
            cmds.append(ReserveCommand("bench", (LineInput(
                COUNTRY, "bench-op", consignee_id(counter[0]), tpp=LINE_TPP),), 86400, None))
        results = ledger.execute(cmds)
        assert not any(isinstance(r, Exception) for r in results), results[:1]

    flag = os.path.join(tempfile.mkdtemp(), "catch-up.on")
    worker = subprocess.Popen([sys.executable, "-c", (
        "import os, time\n"
        "from ledger.merkle_store import catch_up\n"
        "from ledger.store.engine import create_ledger_engine\n"
        f"engine = create_ledger_engine({url!r})\n"
        "while True:\n"
        f"    if os.path.exists({flag!r}):\n"
        "        catch_up(engine)\n"
        "    time.sleep(1)\n")])
    time.sleep(3)  # imports done before the first round

    def run(mode: str) -> float:
        in_txn = mode == "in-txn"
        txnmod.WriteTxn.flush = flush_with_nodes if in_txn else plain_flush  # type: ignore[method-assign]
        txnmod.INSERT_ORDER = ((*plain_order, MERKLE_NODE) if in_txn  # type: ignore[assignment]
                               else plain_order)
        if mode == "catch-up":
            open(flag, "w").close()
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            batch()
            done += args.batch
        rate = done / (time.perf_counter() - started)
        if mode == "catch-up":
            os.remove(flag)
        time.sleep(1.2)
        catch_up(engine)
        return rate

    try:
        for _ in range(5):
            batch()
        catch_up(engine)
        rates: dict[str, list[float]] = {"none": [], "catch-up": [], "in-txn": []}
        for _ in range(args.rounds):
            for mode in rates:
                rates[mode].append(run(mode))
    finally:
        worker.terminate()
        worker.wait()
        txnmod.WriteTxn.flush = plain_flush  # type: ignore[method-assign]
        txnmod.INSERT_ORDER = plain_order
    base = statistics.median(rates["none"])
    for mode, values in rates.items():
        median = statistics.median(values)
        print(f"batch {args.batch}: {mode:9s} median {median:7.0f} entries/s "
              f"({100 * (median / base - 1):+.1f} %); rounds {[round(v) for v in values]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
