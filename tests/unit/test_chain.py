"""The canonical encoding and the chain walk, without a database."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain import (
    ENCODING_VERSION,
    GENESIS_HASH,
    canonical_bytes,
    canonical_bytes_reference,
    entry_hash,
    verify_entries,
)

AT = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class FakeEntry:
    seq: int
    kind: str
    reservation_id: str
    line_no: int
    country: str
    operator_id: str
    consignee_id: str
    path: str
    tpp: int
    draws: list[list[Any]]
    effective_at: datetime
    recorded_at: datetime
    actor: str
    idempotency_key: str | None
    rule_set: str
    rule_set_version: str
    note: str | None
    encoding: int
    prev_hash: str = ""
    hash: str = ""


def make_chain(n: int) -> list[FakeEntry]:
    out, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        e = FakeEntry(seq, "hold", f"res_{seq}", 0, "SG", "op", "c", "lpp", seq * 1000,
                      [["lpp", "consignee:c", "2025", seq * 1000]], AT, AT, "v", None,
                      "ai-diffusion-2025", "1", None, ENCODING_VERSION, prev)
        e = replace(e, hash=entry_hash(prev, e.__dict__))
        out.append(e)
        prev = e.hash
    return out


def test_encoding_is_stable_bytes() -> None:
    e = make_chain(1)[0]
    raw = canonical_bytes(e.__dict__)
    assert raw.startswith(b'{"actor":"v","consignee_id":"c","country":"SG"')
    assert b'"effective_at":"2025-03-01T12:00:00.123456Z"' in raw
    assert b" " not in raw
    # Pinned: a change to the encoding must be a new encoding version.
    assert entry_hash(GENESIS_HASH, e.__dict__) == e.hash
    assert len(e.hash) == 64


def test_floats_and_naive_times_are_refused() -> None:
    e = make_chain(1)[0]
    with pytest.raises(TypeError):
        canonical_bytes({**e.__dict__, "tpp": 1.5})
    with pytest.raises(ValueError):
        canonical_bytes({**e.__dict__, "effective_at": datetime(2025, 1, 1)})


def test_intact_chain_verifies() -> None:
    chain = make_chain(5)
    report = verify_entries(chain)
    assert report.ok and report.entries == 5 and report.head == chain[-1].hash


@pytest.mark.parametrize(
    ("mutate", "bad_seq"),
    [
        (lambda c: c.__setitem__(2, replace(c[2], tpp=c[2].tpp + 1)), 3),
        (lambda c: c.__setitem__(1, replace(c[1], prev_hash=GENESIS_HASH)), 2),
        (lambda c: c.pop(3), 4),  # a gap
        (lambda c: c.__setitem__(4, replace(c[4], note="edited")), 5),
    ],
)
def test_any_change_is_caught_at_its_seq(mutate: Any, bad_seq: int) -> None:
    chain = make_chain(5)
    mutate(chain)
    report = verify_entries(chain)
    assert not report.ok and report.first_bad_seq == bad_seq


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=40),
    key=st.one_of(st.none(), st.text(max_size=30)),
    tpp=st.integers(0, 2**62),
    draws=st.lists(st.tuples(st.text(max_size=10), st.text(max_size=10),
                             st.text(max_size=5), st.integers(0, 2**62)), max_size=4),
)
def test_fast_encoding_equals_the_reference_encoding(text, key, tpp, draws) -> None:  # type: ignore[no-untyped-def]
    """orjson is the fast path; the standard library defines the bytes."""
    e = make_chain(1)[0]
    fields = {**e.__dict__, "note": text, "idempotency_key": key, "tpp": tpp,
              "actor": text[::-1], "draws": [list(d) for d in draws]}
    assert canonical_bytes(fields) == canonical_bytes_reference(fields)
