"""Replay re-decides recorded history under another rule set, writing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.cli import main
from ledger.policy.ruleset import load_rule_set, parse_rule_set
from ledger.replay import replay
from ledger.service import Ledger
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
