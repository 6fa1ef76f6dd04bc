"""The merkle_nodes job and `ledger merkle`: catch-up after commits, a damaged node
table found (finding, exit 1) and rebuilt from entries; proofs from the CLI."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from jobs.merkle_nodes import merkle_nodes
from ledger.cli import main
from ledger.job_records import list_findings
from ledger.merkle import MemoryTree, leaf_hash, verify_inclusion
from ledger.merkle_store import MERKLE_NODE
from ledger.service import Ledger
from ledger.settings import get_settings
from tests.integration.test_merkle_store import append_entries


def test_job_and_cli(ledger: Ledger, make_ctx, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                     capsys: pytest.CaptureFixture[str]) -> None:
    engine = ledger.engine
    hashes = append_entries(engine, 40)
    first = merkle_nodes(make_ctx())
    assert first.outcome == "ok" and first.figures == {"added": 40 - 2}
    hashes = append_entries(engine, 9)
    assert merkle_nodes(make_ctx()).figures == {"added": 49 - 3 - 38}
    assert merkle_nodes(make_ctx(full=True)).outcome == "ok"

    with engine.begin() as conn:
        conn.execute(sa.update(MERKLE_NODE).where(MERKLE_NODE.c.level == 1,
                                                  MERKLE_NODE.c.idx == 6)
                     .values(hash=b"\x01" * 32))
    broken = merkle_nodes(make_ctx(full=True))
    assert broken.outcome == "failed" and broken.figures["first_bad_seq"] == 13
    finding = list_findings(engine, kind="merkle_nodes_wrong")[0]
    assert finding["details"]["fix"] == "ledger merkle rebuild"

    monkeypatch.setenv("LEDGER_DATABASE_URL", engine.url.render_as_string(False))
    get_settings.cache_clear()
    try:
        assert main(["merkle", "verify"]) == 1
        assert "WRONG from seq 13" in capsys.readouterr().out
        assert main(["merkle", "rebuild"]) == 0
        assert main(["merkle", "verify"]) == 0
        assert main(["merkle", "catch-up"]) == 0
        assert "added 0 nodes" in capsys.readouterr().out
        assert main(["merkle", "prove", "--seq", "13", "--head-seq", "40"]) == 0
        doc = json.loads(capsys.readouterr().out)
        tree = MemoryTree([leaf_hash(h) for h in hashes])
        assert doc["root"] == tree.root(40).hex()
        assert verify_inclusion(leaf_hash(hashes[12]), 12, 40,
                                [bytes.fromhex(h) for h in doc["proof"]], tree.root(40))
        assert main(["merkle", "prove", "--from", "7"]) == 0
        assert json.loads(capsys.readouterr().out)["to"] == 49
        assert main(["merkle", "prove", "--seq", "1", "--head-seq", "50"]) == 1
        assert "beyond the chain head" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
