"""Restricted-party screening through the service (SQLite and PostgreSQL): list versions,
every matching rule at its edge, the affiliates rule by date, reservations denied with
constraint `screening`, clearances in the chain, across restarts and in bundles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.bundle import export_bundle, verify_bundle
from ledger.chain import verify_entries
from ledger.cli import main
from ledger.clock import ManualClock
from ledger.errors import NotFound
from ledger.job_records import list_findings
from ledger.reference import ConsigneeInput, Identity, OperatorInput, Owner
from ledger.screening.imports import import_list, list_versions, version_at
from ledger.screening.lists import ListError
from ledger.screening.screen import list_matches
from ledger.service import Ledger
from ledger.settings import get_settings
from ledger.store.txn import ENTRY
from tests.factories import line, reserve

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "screening-sample.csv"
ZENITH_ADDRESS = "No. 8 Fictive Rd., Bldg 3, Harbor Hi-Tech Park, Lumen City, XX"
# The affiliates rule: in force 2025-09-29 .. 2025-11-09, suspended until 2026-11-09.
IN_FORCE = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
SUSPENDED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def sample() -> bytes:
    return SAMPLE.read_bytes()


def load(ledger: Ledger, content: bytes | None = None) -> Any:
    return import_list(ledger.engine, sample() if content is None else content, "sample",
                       "test", ledger.clock.now())


def put_consignee(ledger: Ledger, c_id: str, name: str, address: str | None = None,
                  officers: tuple[str, ...] = (), owners: tuple[tuple[str, int], ...] = (),
                  country: str = "DE") -> str:
    ledger.put_consignee(ConsigneeInput(
        c_id, name, country, "op1",
        identity=Identity(address, officers, tuple(Owner(n, p) for n, p in owners))))
    return c_id


def matches(ledger: Ledger, party_id: str) -> list[tuple[str, str, str]]:
    with Session(ledger.engine) as session:
        return [(m["entry_id"], m["matched_on"], m["state"])
                for m in list_matches(session, party_id, ledger.rule_set, ledger.clock.now())]


def entry_count(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(ENTRY)).scalar_one())


@pytest.fixture
def books(ledger: Ledger) -> Ledger:
    ledger.put_operator(OperatorInput("op1", "Example Vendor Ops", "US"))
    return ledger


def test_import_is_a_dated_version_and_the_same_file_twice_changes_nothing(
        books: Ledger, clock: ManualClock) -> None:
    first = load(books)
    assert first.changed and first.entries == 20 and first.version_id
    clock.advance(hours=1)
    again = load(books)
    assert not again.changed and again.version_id == first.version_id
    assert len(list_versions(books.engine)) == 1


def test_version_in_force_at_a_past_instant(books: Ledger, clock: ManualClock) -> None:
    t0 = clock.now()
    v1 = load(books)
    clock.advance(days=3)
    v2 = load(books, sample().replace(b"Kestrel Cloud Compute LLC", b"Kestrel Cloud LLC"))
    assert v2.changed and v2.version_id != v1.version_id
    def in_force(at: datetime) -> int | None:
        row = version_at(books.engine, at)
        return None if row is None else int(row["version_id"])

    assert in_force(t0 - timedelta(seconds=1)) is None
    assert in_force(t0) == v1.version_id
    assert in_force(t0 + timedelta(days=2, hours=23)) == v1.version_id
    assert in_force(clock.now()) == v2.version_id


def test_a_malformed_row_rejects_the_whole_file_naming_the_row(books: Ledger) -> None:
    lines = sample().split(b"\n")
    lines[6] = lines[6].replace(b"Orrery Photonics Pte. Ltd.", b"")  # row 6: no name
    with pytest.raises(ListError, match=r"^row 6: name is empty"):
        load(books, b"\n".join(lines))
    lines = sample().split(b"\n")
    lines[3] = lines[3] + b",extra"  # row 3: one cell too many
    with pytest.raises(ListError, match=r"^row 3: 30 cells where the header has 29"):
        load(books, b"\n".join(lines))
    with pytest.raises(ListError, match="lacks the column"):
        load(books, b"source,name\nEL,Someone\n")
    assert list_versions(books.engine) == []


def test_unknown_extra_columns_are_ignored(books: Ledger) -> None:
    text = sample().decode().split("\n")
    text = [row + ("," + ("extra_column" if i == 0 else "x")) if row else row
            for i, row in enumerate(text)]
    assert load(books, "\n".join(text).encode()).entries == 20


def test_name_and_alias_match_across_punctuation_and_legal_forms(books: Ledger) -> None:
    load(books)
    put_consignee(books, "c-name", "ZENITH SUPERCOMPUTING CO LTD")
    put_consignee(books, "c-alias", "Zenith H.P.C. Limited")
    put_consignee(books, "c-accent", "Societe Fictive d'Electronique")
    put_consignee(books, "c-other", "Zenith Supercomputing Services")
    assert matches(books, "c-name") == [("FX-0001", "name", "blocking")]
    assert matches(books, "c-alias") == [("FX-0001", "alias", "blocking")]
    assert matches(books, "c-accent") == [("FX-0005", "name", "blocking")]
    assert matches(books, "c-other") == []


def test_a_party_existing_before_the_import_is_rescreened_by_it(books: Ledger) -> None:
    put_consignee(books, "c1", "Tessellate Microsystems, Inc")
    assert matches(books, "c1") == []
    load(books)
    assert matches(books, "c1") == [("FX-0002", "name", "blocking")]


def test_an_address_alone_is_only_a_finding(books: Ledger) -> None:
    load(books)
    put_consignee(books, "c-addr", "Northwind Server Works",
                  address="No 8 Fictive Road, Building 3, Harbor High-Tech Park, Lumen City, XX",
                  officers=("Someone Else",))
    assert matches(books, "c-addr") == []
    assert reserve(books, line("DE", "c-addr")).held
    found = [f for f in list_findings(books.engine, kind="possible_alias")
             if f["details"]["party_id"] == "c-addr"]
    assert [(f["details"]["entry_id"], f["details"]["why"]) for f in found] == [
        ("FX-0001", "shares an address with the listed entry")]
    # Once per fact: the same PUT again finds nothing new.
    put_consignee(books, "c-addr", "Northwind Server Works",
                  address="No 8 Fictive Road, Building 3, Harbor High-Tech Park, Lumen City, XX",
                  officers=("Someone Else",))
    assert len([f for f in list_findings(books.engine, kind="possible_alias")
                if f["details"]["party_id"] == "c-addr"]) == 1


def test_address_and_officer_block_and_the_line_is_denied_holding_nothing(
        books: Ledger) -> None:
    load(books)
    put_consignee(books, "nw", "Northwind Server Works", address=ZENITH_ADDRESS.upper(),
                  officers=("MARA  EXAMPLE",))
    put_consignee(books, "clean", "Clean Compute GmbH")
    assert matches(books, "nw") == [("FX-0001", "address_and_officer", "blocking")]
    before = entry_count(books)
    out = reserve(books, line("DE", "clean"), line("DE", "nw"))
    assert not out.held
    (v,) = out.violations
    assert (v.line, v.constraint, v.key, v.rule) == (1, "screening", "FX-0001", "screening")
    assert "FX-0001" in v.reason and "Entity List" in v.reason
    assert entry_count(books) == before  # nothing held for any line


def test_address_and_officer_with_a_party_that_matches_one_hop(books: Ledger) -> None:
    load(books)
    # A listed company registered as a party (by its listed name) with its officers ...
    put_consignee(books, "tess", "Tessellate Microsystems", address="1 Hop Street, Hopton",
                  officers=("Ann Hop", "Bo Hop"))
    # ... and a new company at its address with one of its officers.
    put_consignee(books, "newco", "Fresh Start Computing", address="1 Hop St, Hopton",
                  officers=("Bo Hop",))
    # Sharing only the address with it is a finding, not a match.
    put_consignee(books, "neighbour", "Next Door Ltd", address="1 Hop Street, Hopton")
    assert matches(books, "newco") == [("FX-0002", "address_and_officer", "blocking")]
    assert matches(books, "neighbour") == []
    # The hop is recomputed when the matching party changes (renamed: no longer listed).
    put_consignee(books, "tess", "Totally Different Name", address="1 Hop Street, Hopton",
                  officers=("Ann Hop", "Bo Hop"))
    assert matches(books, "newco") == []


@pytest.mark.parametrize(("percent", "blocked"), [(49, False), (50, True)])
def test_ownership_at_the_edge_while_the_affiliates_rule_is_in_force(
        books: Ledger, clock: ManualClock, percent: int, blocked: bool) -> None:
    clock.set(IN_FORCE)
    load(books)
    put_consignee(books, "aff", "Zenith Compute Holdings",
                  owners=(("Zenith Supercomputing Co., Ltd", percent - 20),
                          ("Granite Harbour Trading", 20),  # an alias of FX-0010
                          ("Unlisted Investor", 100 - percent)))
    got = matches(books, "aff")
    out = reserve(books, line("DE", "aff"))
    if blocked:
        assert got == [("FX-0001", "ownership", "blocking"), ("FX-0010", "ownership", "blocking")]
        assert not out.held
        assert [(v.constraint, v.key) for v in out.violations] == [
            ("screening", "FX-0001"), ("screening", "FX-0010")]
    else:
        assert got == [] and out.held
        assert any(f["details"]["party_id"] == "aff" and "49 %" in f["details"]["why"]
                   for f in list_findings(books.engine, kind="possible_alias"))


def test_ownership_does_not_block_while_the_affiliates_rule_is_suspended(
        books: Ledger, clock: ManualClock) -> None:
    clock.set(IN_FORCE)
    load(books)
    put_consignee(books, "aff", "Zenith Compute Holdings",
                  owners=(("Zenith Supercomputing", 50), ("Someone", 50)))
    assert not reserve(books, line("DE", "aff")).held
    clock.set(SUSPENDED)
    assert matches(books, "aff") == []
    assert reserve(books, line("DE", "aff")).held
    clock.set(datetime(2026, 11, 10, tzinfo=UTC))  # in force again (reported)
    assert matches(books, "aff") == [("FX-0001", "ownership", "blocking")]


def test_clearance_is_a_chain_entry_survives_a_restart_and_verifies_in_a_bundle(
        books: Ledger, clock: ManualClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    load(books)
    put_consignee(books, "nw", "Northwind Server Works", address=ZENITH_ADDRESS,
                  officers=("Lo Fictus",))
    assert not reserve(books, line("DE", "nw")).held
    with pytest.raises(NotFound):
        books.clear_screening_match("nw", "FX-0002", "no such match", "admin1")
    clock.advance(minutes=1)
    cleared = books.clear_screening_match("nw", "FX-0001", "different firm; checked the "
                                          "registry", "admin1")
    assert cleared["entry_id"] == "FX-0001" and cleared["seq"] == entry_count(books)
    # Repeating it writes nothing.
    assert books.clear_screening_match("nw", "FX-0001", "again", "admin1")["seq"] \
        == cleared["seq"]
    assert matches(books, "nw") == [("FX-0001", "address_and_officer", "cleared")]
    # A new process on the same database: still cleared, and the line is held.
    restarted = Ledger(books.engine, books.rule_set, clock)
    assert reserve(restarted, line("DE", "nw")).held
    with books.engine.connect() as conn:
        rows = conn.execute(sa.select(ENTRY).order_by(ENTRY.c.seq)).all()
    assert verify_entries(rows).ok
    (entry,) = [r for r in rows if r.kind == "clearance"]
    assert (entry.tpp, entry.draws, entry.consignee_id, entry.path, entry.actor) == (
        0, [], "nw", "screening", "admin1")
    assert "FX-0001" in entry.note and "registry" in entry.note
    out = tmp_path / "bundle.jsonl"
    with open(out, "wb") as file:
        export_bundle(books.engine, 1, file, clock.now(), None)
    data = out.read_bytes()
    assert b'"clearance"' in data
    report = verify_bundle(data, None, True)
    assert report.entries == len(rows)
    # And through the commands an auditor runs.
    monkeypatch.setenv("LEDGER_DATABASE_URL", books.engine.url.render_as_string(False))
    monkeypatch.delenv("LEDGER_SIGNING_KEY_PATH", raising=False)
    get_settings.cache_clear()
    try:
        cli_out = tmp_path / "cli.jsonl"
        assert main(["export", "--since", "1", "--out", str(cli_out), "--unsigned"]) == 0
        assert b'"clearance"' in cli_out.read_bytes()
        assert main(["verify-bundle", str(cli_out), "--allow-unsigned"]) == 0
        assert main(["verify"]) == 0
    finally:
        get_settings.cache_clear()


def test_a_clearance_lapses_when_the_party_or_the_entry_changes(
        books: Ledger, clock: ManualClock) -> None:
    load(books)
    put_consignee(books, "c1", "Kestrel Cloud Compute, L.L.C.")
    books.clear_screening_match("c1", "FX-0008", "a namesake", "admin1")
    assert reserve(books, line("DE", "c1")).held
    # The party changes (a new address): blocking again.
    put_consignee(books, "c1", "Kestrel Cloud Compute, L.L.C.", address="1 Other Road")
    assert matches(books, "c1") == [("FX-0008", "name", "blocking")]
    books.clear_screening_match("c1", "FX-0008", "a namesake, still", "admin1")
    assert reserve(books, line("DE", "c1")).held
    # The list entry changes in a new version: blocking again.
    clock.advance(days=1)
    load(books, sample().replace(b"300 Nonesuch Blvd., Fl. 2", b"301 Nonesuch Blvd., Fl. 2"))
    assert matches(books, "c1") == [("FX-0008", "name", "blocking")]
    assert not reserve(books, line("DE", "c1")).held
    # Another entry changing does not lapse a clearance.
    books.clear_screening_match("c1", "FX-0008", "a namesake, again", "admin1")
    clock.advance(days=1)
    load(books, sample().replace(b"300 Nonesuch Blvd., Fl. 2", b"301 Nonesuch Blvd., Fl. 2")
         .replace(b"Mirage Components Trading", b"Mirage Components Trading House"))
    assert matches(books, "c1") == [("FX-0008", "name", "cleared")]
