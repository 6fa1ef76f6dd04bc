"""Merkle nodes in the database (ledger.merkle_store), on both databases: catch-up
stores exactly the complete subtrees, proofs from the table (and from entries
past its coverage) equal the in-memory tree's, damage is found and rebuilt."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger import merkle_store
from ledger.chain import ENCODING_VERSION, GENESIS_HASH, entry_hash
from ledger.merkle import (
    MemoryTree,
    consistency_proof,
    frontier_from_leaves,
    inclusion_proof,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.merkle_store import (
    MERKLE_NODE,
    MissingEntries,
    TreeSizeError,
    catch_up,
    frontier_at,
    frontier_for_signing,
    prove_consistency,
    prove_inclusion,
    rebuild,
    stored_coverage,
    verify_nodes,
)
from ledger.store.models import ChainHead, Entry

ENTRY = Entry.__table__  # type: ignore[attr-defined]
CHAIN_HEAD = ChainHead.__table__  # type: ignore[attr-defined]
AT = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def append_entries(engine: sa.Engine, count: int) -> list[str]:
    """Appends `count` synthetic, correctly chained entries; returns all entry hashes."""
    with Session(engine) as session, session.begin():
        seq, prev = session.execute(
            sa.select(CHAIN_HEAD.c.seq, CHAIN_HEAD.c.hash).where(CHAIN_HEAD.c.id == 1)).one()
        rows = []
        for _ in range(count):
            seq += 1
            fields = {
                "seq": seq, "kind": "hold", "reservation_id": f"r{seq}", "line_no": 1,
                "country": "IN", "operator_id": "op", "consignee_id": "c", "path": "aia",
                "tpp": seq, "draws": [], "effective_at": AT, "recorded_at": AT,
                "actor": "test", "idempotency_key": None, "rule_set": "t",
                "rule_set_version": "1", "note": None, "encoding": ENCODING_VERSION,
            }
            fields["prev_hash"] = prev
            fields["hash"] = prev = entry_hash(prev, fields)
            rows.append(fields)
        if rows:
            session.execute(sa.insert(ENTRY), rows)
        session.execute(sa.update(CHAIN_HEAD).where(CHAIN_HEAD.c.id == 1)
                        .values(seq=seq, hash=prev))
        return [h for (h,) in session.execute(sa.select(ENTRY.c.hash).order_by(ENTRY.c.seq))]


def stored(engine: sa.Engine) -> dict[tuple[int, int], bytes]:
    with Session(engine) as session:
        return {(lv, i): bytes(h) for lv, i, h in session.execute(sa.select(MERKLE_NODE))}


def expected_nodes(tree: MemoryTree) -> dict[tuple[int, int], bytes]:
    return {(lv, i): h for lv, hashes in enumerate(tree.levels) if lv
            for i, h in enumerate(hashes)}


def test_catch_up_proofs_and_damage(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    assert GENESIS_HASH
    assert catch_up(engine) == 0
    hashes = append_entries(engine, 150)
    assert catch_up(engine, chunk=37) == 150 - bin(150).count("1")
    assert catch_up(engine) == 0  # idempotent
    tree = MemoryTree([leaf_hash(h) for h in hashes])
    assert stored(engine) == expected_nodes(tree)

    # 43 more entries not caught up: proofs still cover them, computed from entries
    hashes = append_entries(engine, 43)
    n = len(hashes)
    tree = MemoryTree([leaf_hash(h) for h in hashes])
    rng = random.Random(11)
    with Session(engine) as session:
        assert stored_coverage(session) == 150
        pairs = [(1, 1), (1, n), (n, n), (150, 151), (151, 193), (128, 129)]
        pairs += [(rng.randint(1, k), k) for k in (rng.randint(1, n) for _ in range(60))]
        for seq, head in pairs:
            p = prove_inclusion(session, seq, head)
            assert p.proof == inclusion_proof(seq - 1, head, tree.get_node)
            assert p.root == tree.root(head)
            assert verify_inclusion(leaf_hash(hashes[seq - 1]), seq - 1, head, p.proof, p.root)
            c = prove_consistency(session, seq, head)
            assert c.proof == consistency_proof(seq, head, tree.get_node)
            assert verify_consistency(seq, head, tree.root(seq), tree.root(head), c.proof)
            assert frontier_at(session, head).root() == tree.root(head)
        assert prove_consistency(session, 0, n).proof == []
        with pytest.raises(TreeSizeError):
            prove_inclusion(session, 1, n + 1)
        with pytest.raises(TreeSizeError):
            prove_inclusion(session, 0, n)
        with pytest.raises(TreeSizeError):
            prove_consistency(session, 5, 4)
    assert verify_nodes(engine).ok

    # damage: one node changed, one deleted; proofs still right (recomputed)
    with Session(engine) as session, session.begin():
        session.execute(sa.update(MERKLE_NODE).where(MERKLE_NODE.c.level == 2,
                                                     MERKLE_NODE.c.idx == 5)
                        .values(hash=b"\x00" * 32))
        session.execute(sa.delete(MERKLE_NODE).where(MERKLE_NODE.c.level == 3,
                                                     MERKLE_NODE.c.idx == 7))
    report = verify_nodes(engine, chunk=50)
    assert not report.ok
    assert report.wrong == [(2, 5)] and report.missing == [(3, 7)]
    assert report.first_bad_seq() == 5 * 4 + 1
    with Session(engine) as session:
        p = prove_inclusion(session, 60, 150)  # needs node (3, 7) = leaves 56..63
        assert p.proof == inclusion_proof(59, 150, tree.get_node)
    monkeypatch.setattr(merkle_store, "COPY_NODES", 8)  # the bulk path (COPY on PostgreSQL)
    assert rebuild(engine, chunk=64) == n - bin(n).count("1")
    assert catch_up(engine) == 0
    assert verify_nodes(engine).ok
    assert stored(engine) == expected_nodes(tree)


def test_nodes_past_the_chain_end_are_dropped_by_catch_up(engine: sa.Engine) -> None:
    """A chain that ends earlier than the table (a restored backup) must not keep nodes
    of entries that are gone: new entries at those seqs would inherit them."""
    hashes = append_entries(engine, 70)
    catch_up(engine)
    with Session(engine) as session, session.begin():
        session.execute(sa.update(CHAIN_HEAD).values(seq=45, hash=hashes[44]))
    assert catch_up(engine) == 0
    assert stored(engine) == expected_nodes(MemoryTree([leaf_hash(h) for h in hashes[:45]]))
    with Session(engine) as session, session.begin():
        session.execute(sa.update(CHAIN_HEAD).values(seq=70, hash=hashes[69]))
    assert catch_up(engine) > 0
    assert stored(engine) == expected_nodes(MemoryTree([leaf_hash(h) for h in hashes]))
    assert verify_nodes(engine).ok
    # a chain head past the entries (entries deleted): proofs past them say so
    with Session(engine) as session, session.begin():
        session.execute(sa.update(CHAIN_HEAD).values(seq=75))
    with Session(engine) as session, pytest.raises(MissingEntries, match=r"71\.\.75"):
        prove_inclusion(session, 1, 75)


def test_frontier_for_signing_trusts_nodes_only_when_they_give_the_signed_root(
    engine: sa.Engine,
) -> None:
    hashes = append_entries(engine, 90)
    catch_up(engine)
    hashes = append_entries(engine, 5)  # 91..95 past the signed head and the nodes
    tree = MemoryTree([leaf_hash(h) for h in hashes])
    with Session(engine) as session:
        for signed in (None, 90, 95):
            f = frontier_for_signing(session, 95, signed, None if signed is None
                                     else tree.root(signed).hex())
            assert f.to_state() == frontier_from_leaves(tree.levels[0]).to_state()
    # a forged node: the signed root is not reproduced, so entries are read instead
    with Session(engine) as session, session.begin():
        session.execute(sa.update(MERKLE_NODE).where(MERKLE_NODE.c.level == 6,
                                                     MERKLE_NODE.c.idx == 0)
                        .values(hash=b"\x07" * 32))
    with Session(engine) as session:
        assert frontier_at(session, 90).root() != tree.root(90)
        f = frontier_for_signing(session, 95, 90, tree.root(90).hex())
        assert f.root() == tree.root(95)
