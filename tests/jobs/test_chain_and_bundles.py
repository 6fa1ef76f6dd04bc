"""Chain verification from checkpoints, signed checkpoints, export and offline bundle checks."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobs.bundle import BundleError, export_bundle, verify_bundle
from jobs.signing import create_signing_key, sign_checkpoint
from jobs.verify import verify
from ledger.cli import main
from ledger.clock import ManualClock
from ledger.job_records import list_findings
from ledger.service import Ledger
from ledger.settings import get_settings
from tests.factories import consignee, line, operator, reserve


@pytest.fixture
def books(ledger: Ledger) -> Ledger:
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    for q in (1, 2, 3):
        res = reserve(ledger, line("SG", "sg-lab", quantity=q)).reservation
        assert res is not None
        ledger.commit(res.id, "vendor1")
    return ledger  # 6 entries


def tamper(engine: sa.Engine, seq: int) -> None:
    """What an attacker with database access does: drop the guard, then edit."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP TRIGGER entry_no_update_delete ON entry")
        else:
            conn.exec_driver_sql("DROP TRIGGER entry_no_update")
        conn.execute(sa.text("UPDATE entry SET tpp = tpp + 1 WHERE seq = :s"), {"s": seq})


def test_verify_walks_from_the_last_checkpoint_and_names_the_tampered_seq(
    books: Ledger, make_ctx
) -> None:
    first = verify(make_ctx())
    assert first.outcome == "ok" and first.figures["checked"] == 6
    res = reserve(books, line("SG", "sg-lab", quantity=4)).reservation
    assert res is not None
    second = verify(make_ctx())
    assert second.figures["from_seq"] == 6 and second.figures["checked"] == 1

    reserve(books, line("SG", "sg-lab", quantity=5))  # seq 8, after the checkpoint at 7
    tamper(books.engine, 8)
    broken = verify(make_ctx())
    assert broken.outcome == "failed" and broken.figures["first_bad_seq"] == 8
    assert broken.figures["from_seq"] == 7
    assert list_findings(books.engine, kind="chain_broken")[0]["details"]["seq"] == 8


def test_tampering_before_the_checkpoint_is_caught_by_a_full_walk(
    books: Ledger, make_ctx
) -> None:
    assert verify(make_ctx()).outcome == "ok"
    tamper(books.engine, 3)
    assert verify(make_ctx()).outcome == "ok"  # incremental: nothing new to check
    full = verify(make_ctx(full=True))
    assert full.outcome == "failed" and full.figures["first_bad_seq"] == 3


def _signed_bundle(books: Ledger, clock: ManualClock, tmp_path: Path, make_ctx,
                   since: int = 1) -> tuple[bytes, Path]:
    key_path = tmp_path / "signing.pem"
    public = create_signing_key(key_path)
    (tmp_path / "public.pem").write_text(public)
    ctx = make_ctx(settings=None)
    ctx.settings.signing_key_path = str(key_path)
    assert sign_checkpoint(ctx).figures["signed"] == 1
    assert sign_checkpoint(ctx).figures["signed"] == 0  # head unchanged: nothing to sign
    res = reserve(books, line("SG", "sg-lab", quantity=5)).reservation
    assert res is not None
    clock.advance(60)
    assert sign_checkpoint(ctx).figures["seq"] == 7
    out = io.BytesIO()
    summary = export_bundle(books.engine, since, out, clock.now(), str(key_path))
    assert summary.signed and summary.checkpoints == 2
    return out.getvalue(), key_path


def test_bundle_verifies_offline_and_any_altered_byte_fails(
    books: Ledger, clock: ManualClock, tmp_path: Path, make_ctx
) -> None:
    data, _ = _signed_bundle(books, clock, tmp_path, make_ctx)
    pinned = (tmp_path / "public.pem").read_text()
    report = verify_bundle(data, pinned)
    assert (report.entries, report.checkpoints, report.first_seq, report.last_seq) == (7, 2, 1, 7)

    rng = random.Random(5)
    positions = [*sorted(rng.sample(range(len(data)), 150)), 0, len(data) - 1]
    for pos in positions:
        altered = bytearray(data)
        altered[pos] = (altered[pos] + 1 + rng.randrange(254)) % 256
        with pytest.raises(BundleError):
            verify_bundle(bytes(altered), pinned)


def test_verify_bundle_cli_names_the_first_bad_entry(
    books: Ledger, clock: ManualClock, tmp_path: Path, make_ctx, monkeypatch, capsys
) -> None:
    data, key_path = _signed_bundle(books, clock, tmp_path, make_ctx, since=3)
    good = tmp_path / "good.jsonl"
    good.write_bytes(data)
    assert main(["verify-bundle", str(good), "--public-key", str(tmp_path / "public.pem")]) == 0
    assert "bundle: ok: 5 entries (seq 3..7)" in capsys.readouterr().out

    lines = data.split(b"\n")
    lines[2] = lines[2].replace(b'"tpp":', b'"tpp":1', 1)  # entry seq 4 (line 3)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines))
    assert main(["verify-bundle", str(bad)]) == 1
    assert "line 3 (entry seq 4): hash does not match" in capsys.readouterr().out

    # And the export command itself, from the configured database and key.
    monkeypatch.setenv("LEDGER_DATABASE_URL", str(books.engine.url.render_as_string(False)))
    monkeypatch.setenv("LEDGER_SIGNING_KEY_PATH", str(key_path))
    get_settings.cache_clear()
    try:
        out = tmp_path / "cli.jsonl"
        assert main(["export", "--since", "1", "--out", str(out)]) == 0
        assert main(["verify-bundle", str(out)]) == 0
    finally:
        get_settings.cache_clear()
