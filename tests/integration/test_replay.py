"""Replay re-decides recorded history under another rule set, writing nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.cli import main
from ledger.policy.ruleset import load_rule_set, parse_rule_set
from ledger.replay import replay
from ledger.service import Ledger
from ledger.views import LineInput
from tests.factories import H100, consignee, license_, line, operator, reserve

BUILTIN = Path(__file__).parents[2] / "ledger" / "policy" / "rulesets"


@pytest.fixture
def history(ledger: Ledger, clock) -> Ledger:  # type: ignore[no-untyped-def]
    operator(ledger, "op1", hq="SG")
    consignee(ledger, "sg-lab", "SG")
    consignee(ledger, "us-lab", "US")
    license_(ledger, "lic-sg", "SG", 10**9)
    a = reserve(ledger, line("SG", "sg-lab", quantity=1000)).reservation  # lpp
    b = reserve(ledger, line("SG", "sg-lab", quantity=699)).reservation  # lpp, fills it
    c = reserve(ledger, line("SG", "sg-lab", quantity=10, license_id="lic-sg")).reservation
    d = reserve(ledger, line("US", "us-lab", quantity=5)).reservation  # tier1
    assert a and b and c and d
    ledger.commit(a.id, "v")
    ledger.release(b.id, "v")
    clock.advance(7200)  # c and d expire
    ledger.expire_due()
    return ledger


def _entry_count(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM entry").scalar_one())


def test_replay_under_the_same_rule_set_changes_nothing(history: Ledger) -> None:
    before = _entry_count(history)
    report = replay(history.engine, load_rule_set("ai-diffusion-2025"))
    assert (report.reservations, report.lines) == (4, 4)
    assert report.same_path == 4 and report.other_path == 0
    assert report.denied_reservations == 0
    assert report.recorded_by_country == report.replayed_by_country == {
        "SG": 1709 * H100, "US": 5 * H100}
    assert _entry_count(history) == before


def test_replay_with_a_lower_lpp_cap_denies_what_no_longer_fits(history: Ledger) -> None:
    text = (BUILTIN / "ai-diffusion-2025.toml").read_text()
    assert "26_900_000" in text
    lower = parse_rule_set(text.replace("26_900_000", "20_000_000").encode(), "lower.toml")
    report = replay(history.engine, lower)
    # 1,000 H100 = 15,832,000 fits under 20M; the next 699 (11,066,568) does not, so
    # it is denied; the LPP room it leaves then takes the 10-H100 line that was
    # recorded on the licence path (LPP is tried before a licence).
    assert report.denied_reservations == 1
    assert report.other_path == 2
    denied, moved = report.differences
    assert (denied.recorded_path, denied.replayed_path, denied.tpp) == ("lpp", None, 699 * H100)
    assert "lpp" in denied.constraints
    assert (moved.recorded_path, moved.replayed_path, moved.tpp) == ("license", "lpp", 10 * H100)
    assert report.replayed_by_country["SG"] == (1000 + 10) * H100


def test_replay_cli_prints_a_summary(history: Ledger, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from ledger.settings import get_settings

    monkeypatch.setenv("LEDGER_DATABASE_URL", history.engine.url.render_as_string(False))
    get_settings.cache_clear()
    try:
        assert main(["replay", "--rule-set", "post-rescission-2025"]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert "replayed under post-rescission-2025" in out
    assert "reservations: 4" in out


@pytest.fixture
def mixed_history(ledger: Ledger, clock) -> Ledger:  # type: ignore[no-untyped-def]
    """Recorded under ai-diffusion-2025: 2025 lines to SA, SG, DE and CN-owned in SG;
    then, after the UAE's move to A:5 (2026-07-10), lines to AE and SA."""
    operator(ledger, "op1", hq="SG")
    operator(ledger, "us-op", hq="US")
    consignee(ledger, "sa-lab", "SA")
    consignee(ledger, "sg-lab", "SG")
    consignee(ledger, "de-lab", "DE", operator_id="us-op")
    consignee(ledger, "ae-lab", "AE", operator_id="us-op")
    license_(ledger, "lic-sa", "SA", 10**9)
    def reserve_and_commit(*lines: LineInput) -> None:
        result = reserve(ledger, *lines)
        assert result.reservation is not None
        ledger.commit(result.reservation.id, "v")

    reserve_and_commit(line("SA", "sa-lab", quantity=1000))  # lpp
    reserve_and_commit(line("SG", "sg-lab", quantity=10))  # lpp
    reserve_and_commit(line("DE", "de-lab", operator_id="us-op", quantity=5))  # tier1
    clock.advance(int((datetime(2026, 7, 15, tzinfo=UTC) - clock.now()).total_seconds()))
    reserve_and_commit(line("AE", "ae-lab", operator_id="us-op", quantity=100))  # lpp
    reserve_and_commit(line("SA", "sa-lab", quantity=10, license_id="lic-sa"))  # lpp
    return ledger


# (country, TPP) -> replayed path, or None when the replayed set denies it.
REPLAYED: dict[str, dict[str, list[str | None]]] = {
    "ai-diffusion-2025": {"SA": ["lpp", "lpp"], "SG": ["lpp"], "DE": ["tier1"], "AE": ["lpp"]},
    # D:1/D:4 need a licence (PRS-2); the UAE stays in D:4 in the 2025 set.
    "post-rescission-2025": {"SA": [None, "license"], "SG": ["tier1"], "DE": ["tier1"],
                             "AE": [None]},
    # The UAE is in A:5 from 2026-07-10 (USC-8): licence-free.
    "us-controls-2026": {"SA": [None, "license"], "SG": ["tier1"], "DE": ["tier1"],
                         "AE": ["tier1"]},
}


@pytest.mark.parametrize("name", sorted(REPLAYED))
def test_replay_each_builtin_rule_set_reports_where_it_differs(
    mixed_history: Ledger, name: str
) -> None:
    report = replay(mixed_history.engine, load_rule_set(name))
    assert (report.reservations, report.lines, report.unresolvable) == (5, 5, 0)
    expected = REPLAYED[name]
    recorded = {"SA": ["lpp", "lpp"], "SG": ["lpp"], "DE": ["tier1"], "AE": ["lpp"]}
    changed = sum(a != b for c in recorded for a, b in zip(recorded[c], expected[c], strict=True))
    assert report.other_path == changed
    assert report.denied_reservations == sum(p is None for ps in expected.values() for p in ps)
    for difference in report.differences:
        assert difference.replayed_path in expected[difference.country]
        if difference.replayed_path is None:
            assert difference.constraints == ("license_required",)


@pytest.mark.parametrize("name", sorted(REPLAYED))
def test_replay_cli_runs_for_every_builtin_rule_set(
    mixed_history: Ledger, name: str, monkeypatch, capsys  # type: ignore[no-untyped-def]
) -> None:
    from ledger.settings import get_settings

    monkeypatch.setenv("LEDGER_DATABASE_URL", mixed_history.engine.url.render_as_string(False))
    get_settings.cache_clear()
    try:
        assert main(["replay", "--rule-set", name]) == 0
    finally:
        get_settings.cache_clear()
    out = capsys.readouterr().out
    assert f"replayed under {name}" in out
    assert "reservations: 5" in out
