"""What `verify-bundle` says: whether the signer was pinned, counts in good English."""

from __future__ import annotations

import io
from pathlib import Path

from jobs.bundle import export_bundle
from ledger.cli import main
from ledger.clock import ManualClock
from ledger.service import Ledger
from tests.jobs.test_chain_and_bundles import _signed_bundle, books  # noqa: F401 (fixture)


def test_verify_bundle_says_whether_the_signer_was_pinned(
    books: Ledger, clock: ManualClock, tmp_path: Path, make_ctx, capsys  # noqa: F811
) -> None:
    _, key_path = _signed_bundle(books, clock, tmp_path, make_ctx)
    out = io.BytesIO()  # from seq 7: one entry, one checkpoint
    export_bundle(books.engine, 7, out, clock.now(), str(key_path))
    bundle = tmp_path / "one.jsonl"
    bundle.write_bytes(out.getvalue())

    assert main(["verify-bundle", str(bundle)]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("bundle: ok (signature self-consistent only: signer not pinned; "
                          "pass --public-key): 1 entry (seq 7..7), 1 signed checkpoint, ")
    assert "None" not in text

    assert main(["verify-bundle", str(bundle), "--public-key",
                 str(tmp_path / "public.pem")]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("bundle: ok: 1 entry (seq 7..7), 1 signed checkpoint, head ")
    assert "signed by the pinned key" in text and "None" not in text


def test_an_unsigned_bundle_says_so_instead_of_key_none(
    books: Ledger, tmp_path: Path, capsys  # noqa: F811
) -> None:
    out = io.BytesIO()
    export_bundle(books.engine, 1, out, books.clock.now(), None)
    bundle = tmp_path / "unsigned.jsonl"
    bundle.write_bytes(out.getvalue())
    assert main(["verify-bundle", str(bundle), "--allow-unsigned"]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("bundle: ok (UNSIGNED: hash chain and digest only, no signature "
                           "checked): 6 entries (seq 1..6), 0 signed checkpoints, head ")
    assert "key None" not in text
