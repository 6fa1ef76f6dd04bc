"""The idempotency request hash: its form is stored, so it must never drift."""

from __future__ import annotations

import hashlib
import json
from dataclasses import astuple, fields

from ledger.views import LineInput, ReserveCommand


def test_line_values_are_every_field_in_declaration_order() -> None:
    line = LineInput("SG", "op-ü", "c1", "H100", 8, None, "lic")
    assert line.values() == [getattr(line, f.name) for f in fields(LineInput)]


def test_request_hash_is_the_stored_form() -> None:
    cmd = ReserveCommand("vendor:v", (LineInput("SG", "op-ü", "c1", "H100", 8),
                                      LineInput("MY", "op", "c2", tpp=1_000)), 3600, "k")
    doc = [3600, [astuple(line) for line in cmd.lines]]  # the form hashes were stored in
    want = hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()
    assert cmd.request_hash() == want
    # Pinned: a change of form would turn every stored key into a mismatch.
    assert want == "39dae5db5478b65dc3db95fadd7f2550f55dd053c59b99a33ef9686cff0621a9"
