"""Merkle proof figures (issue 11): `python -m bench.merkle [--leaves N] [--postgres URL]`.

1. In memory, over N synthetic leaves (default 1,000,000): frontier appends,
   proof sizes (hashes and bytes) and verification times of inclusion and
   consistency proofs (ledger.merkle, what an auditor's client runs).
2. On PostgreSQL (unless --no-db): a fresh database with N synthetic entries
   (random hashes: proofs do not look at the chain), `catch_up` filling the
   node table, then proof generation from it (ledger.merkle_store, what the
   API runs), and the same with the last 1,000 entries not yet caught up.

Prints a Markdown table (paste into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ledger.merkle import (
    MemoryTree,
    MerkleFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

Rows = list[tuple[str, str]]


def _time(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of one call."""
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def entry_hashes(n: int) -> list[str]:
    return [hashlib.sha256(i.to_bytes(8, "big")).hexdigest() for i in range(1, n + 1)]


def in_memory(n: int, rows: Rows, rng: random.Random) -> None:
    hashes = entry_hashes(n)
    t = time.perf_counter()
    leaves = [leaf_hash(h) for h in hashes]
    frontier = MerkleFrontier()
    for leaf in leaves:
        frontier.append(leaf)
    append_us = (time.perf_counter() - t) / n * 1e6
    root = frontier.root()
    rows.append((f"leaf hash + frontier append ({n:,} leaves)", f"{append_us:.2f} µs per entry"))
    t = time.perf_counter()
    tree = MemoryTree(leaves)
    rows.append(("whole tree in memory (all levels)", f"{time.perf_counter() - t:.1f} s"))
    assert tree.root() == root

    indices = [rng.randrange(n) for _ in range(2000)]
    proofs = [inclusion_proof(i, n, tree.get_node) for i in indices]
    sizes = [len(p) for p in proofs]
    rows.append((f"inclusion proof at size {n:,}: hashes",
                 f"{min(sizes)} to {max(sizes)} (mean {statistics.mean(sizes):.1f}); "
                 f"{max(sizes) * 32} bytes at most ({max(sizes) * 64} as hex)"))
    t = time.perf_counter()
    for i, p in zip(indices, proofs, strict=True):
        assert verify_inclusion(leaves[i], i, n, p, root)
    rows.append(("verify one inclusion proof (Python, ledger.merkle)",
                 f"{(time.perf_counter() - t) / len(proofs) * 1e6:.0f} µs"))

    olds = [rng.randrange(1, n) for _ in range(500)]
    cproofs = [(m, consistency_proof(m, n, tree.get_node)) for m in olds]
    csizes = [len(p) for _, p in cproofs]
    rows.append((f"consistency proof m → {n:,} (m random): hashes",
                 f"{min(csizes)} to {max(csizes)} (mean {statistics.mean(csizes):.1f}); "
                 f"{max(csizes) * 32} bytes at most"))
    roots = {m: tree.root(m) for m in olds}
    t = time.perf_counter()
    for m, p in cproofs:
        assert verify_consistency(m, n, roots[m], root, p)
    rows.append(("verify one consistency proof",
                 f"{(time.perf_counter() - t) / len(cproofs) * 1e6:.0f} µs"))
    state = frontier.to_state()
    rows.append((f"frontier state at {n:,} (carried by bundles)",
                 f"{len(state['hashes'])} hashes"))


def on_postgres(url: str, n: int, rows: Rows, rng: random.Random) -> None:
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from bench.seed import fresh_database
    from ledger.merkle_store import (
        catch_up,
        chain_size,
        prove_consistency,
        prove_inclusion,
        verify_nodes,
    )
    from ledger.store.engine import create_ledger_engine

    db = fresh_database(url, "ledger_bench_merkle")
    engine = create_ledger_engine(db)
    hashes = entry_hashes(n)
    at = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    t = time.perf_counter()
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur, cur.copy(
            "COPY entry (seq, kind, reservation_id, line_no, country, operator_id, "
            "consignee_id, path, tpp, draws, effective_at, recorded_at, actor, rule_set, "
            "rule_set_version, encoding, prev_hash, hash) FROM STDIN"
        ) as copy:
            prev = "0" * 64
            for seq, h in enumerate(hashes, start=1):
                copy.write_row((seq, "hold", f"r{seq}", 1, "SG", "op", "c", "aia", 1, "[]",
                                at, at, "bench", "t", "1", 1, prev, h))
                prev = h
        conn.execute(sa.text("UPDATE chain_head SET seq = :s, hash = :h WHERE id = 1"),
                     {"s": n, "h": hashes[-1]})
    print(f"   loaded {n:,} synthetic entries in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    added = catch_up(engine)
    took = time.perf_counter() - t
    rows.append((f"PostgreSQL: fill the node table for {n:,} entries (catch-up / rebuild)",
                 f"{added:,} nodes in {took:.1f} s ({took / n * 1e6:.0f} µs per entry)"))

    def prove(k: int) -> tuple[float, float]:
        with Session(engine) as session:
            size = chain_size(session)
            seqs = [rng.randint(1, size) for _ in range(k)]
            olds = [rng.randint(1, size) for _ in range(k)]
            t = time.perf_counter()
            for s in seqs:
                prove_inclusion(session, s, size)
            inc = (time.perf_counter() - t) / k
            t = time.perf_counter()
            for m in olds:
                prove_consistency(session, m, size)
            con = (time.perf_counter() - t) / k
        return inc, con

    inc, con = prove(200)
    rows.append(("PostgreSQL: one inclusion proof from the node table",
                 f"{inc * 1e3:.1f} ms"))
    rows.append(("PostgreSQL: one consistency proof from the node table",
                 f"{con * 1e3:.1f} ms"))
    # 1,000 more entries not yet caught up: computed from entries on the fly
    with engine.begin() as conn:
        extra = [hashlib.sha256(b"x" + i.to_bytes(8, "big")).hexdigest() for i in range(1000)]
        conn.execute(sa.text(
            "INSERT INTO entry (seq, kind, reservation_id, line_no, country, operator_id, "
            "consignee_id, path, tpp, draws, effective_at, recorded_at, actor, rule_set, "
            "rule_set_version, encoding, prev_hash, hash) VALUES (:seq, 'hold', :r, 1, 'SG', "
            "'op', 'c', 'aia', 1, '[]', :at, :at, 'bench', 't', '1', 1, :p, :h)"),
            [{"seq": n + 1 + i, "r": f"x{i}", "at": at, "p": "0" * 64, "h": h}
             for i, h in enumerate(extra)])
        conn.execute(sa.text("UPDATE chain_head SET seq = :s WHERE id = 1"), {"s": n + 1000})
    inc, con = prove(50)
    rows.append(("… with the last 1,000 entries not caught up (computed from entries)",
                 f"inclusion {inc * 1e3:.1f} ms, consistency {con * 1e3:.1f} ms"))
    t = time.perf_counter()
    catch_up(engine)
    rows.append(("PostgreSQL: catch-up of those 1,000 entries",
                 f"{(time.perf_counter() - t) * 1e3:.0f} ms"))
    t = time.perf_counter()
    report = verify_nodes(engine)
    assert report.ok
    rows.append(("PostgreSQL: `ledger merkle verify` (recompute and compare every node)",
                 f"{time.perf_counter() - t:.1f} s"))
    with engine.connect() as conn:
        size = conn.execute(sa.text(
            "SELECT pg_total_relation_size('merkle_node')")).scalar() or 0
    rows.append(("PostgreSQL: merkle_node table + index size",
                 f"{size / 2**20:.0f} MiB ({size / n:.0f} bytes per entry)"))
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.merkle")
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-db", action="store_true")
    args = parser.parse_args()
    rng = random.Random(9162)
    rows: Rows = []
    print("== in memory", flush=True)
    in_memory(args.leaves, rows, rng)
    if not args.no_db:
        print("== PostgreSQL", flush=True)
        on_postgres(args.postgres, args.leaves, rows, rng)
    print("\n| figure | value |\n| --- | --- |")
    for figure, value in rows:
        print(f"| {figure} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
