"""Loading and validating rule sets; the lookups the engine relies on."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ledger.policy import (
    RuleSet,
    RuleSetError,
    UnknownCountryError,
    builtin_rule_sets,
    load_rule_set,
)
from ledger.policy.ruleset import parse_rule_set

DIFFUSION = load_rule_set("ai-diffusion-2025")
RESCINDED = load_rule_set("post-rescission-2025")
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "ledger" / "policy" / "rulesets"

# The chip catalog of docs/rules/README.md, copied by hand: the file must say exactly this.
CHIP_TABLE = {
    "H100-SXM": 15_832,
    "H200-SXM": 15_832,
    "H800-SXM": 15_832,
    "H100-PCIE": 12_104,
    "H800-PCIE": 12_104,
    "H100-NVL": 13_364,
    "H200-NVL": 13_364,
    "A100": 4_992,
    "A800": 4_992,
    "H20": 2_368,
    "L40S": 5_864,
    "B100": 28_000,
    "B200": 36_000,
    "GB200": 80_000,
    "B300": 56_000,
    "GB300": 60_000,
    "MI300X": 20_919,
    "MI325X": 20_919,
    "MI300A": 15_690,
    "MI350X": 36_910,
    "MI355X": 40_265,
    "GAUDI3": 29_360,
}
NOT_FIRM_CHIPS = {"H100-PCIE", "H800-PCIE", "L40S", "GB200", "GB300", "GAUDI3"}


def test_builtin_names() -> None:
    assert builtin_rule_sets() == ["ai-diffusion-2025", "post-rescission-2025"]
    assert DIFFUSION.name == "ai-diffusion-2025"
    assert RESCINDED.name == "post-rescission-2025"
    assert DIFFUSION.effective_from == date(2025, 1, 13)
    assert RESCINDED.effective_from == date(2025, 5, 13)


@pytest.mark.parametrize("rule_set", [DIFFUSION, RESCINDED], ids=lambda r: r.name)
def test_chip_catalog_matches_the_regulation_table(rule_set: RuleSet) -> None:
    assert {c.id: c.tpp for c in rule_set.chips()} == CHIP_TABLE
    for chip_id, tpp in CHIP_TABLE.items():
        assert rule_set.chip_tpp(chip_id) == tpp
    assert rule_set.chip_tpp("h100-sxm") is None  # ids are case-sensitive
    assert rule_set.chip_tpp("H100") is None
    chip = rule_set.chip("H20")
    assert chip is not None and chip.classification == "outside"
    h100 = rule_set.chip("H100-SXM")
    assert h100 is not None and h100.classification == "3A090.a"


TIER1 = [
    "US",
    "AU",
    "BE",
    "CA",
    "DK",
    "FI",
    "FR",
    "DE",
    "IE",
    "IT",
    "JP",
    "NL",
    "NZ",
    "NO",
    "KR",
    "ES",
    "SE",
    "TW",
    "GB",
]
TIER3 = [
    "AF",
    "BY",
    "MM",
    "CF",
    "CN",
    "HK",
    "CD",
    "CU",
    "ER",
    "HT",
    "IR",
    "IQ",
    "KP",
    "LB",
    "LY",
    "NI",
    "RU",
    "SO",
    "SS",
    "SD",
    "SY",
    "VE",
    "ZW",
    "MO",
]


@pytest.mark.parametrize("code", TIER1)
def test_tier1(code: str) -> None:
    assert DIFFUSION.tier(code, date(2025, 6, 1)) == 1


@pytest.mark.parametrize("code", TIER3)
def test_tier3(code: str) -> None:
    assert DIFFUSION.tier(code, date(2025, 6, 1)) == 3
    assert RESCINDED.tier(code, date(2025, 6, 1)) == 3


@pytest.mark.parametrize("code", ["SG", "AE", "SA", "IN", "MY", "TH", "IL", "PL", "CH", "MX"])
def test_everyone_else_is_tier2(code: str) -> None:
    assert DIFFUSION.tier(code, date(2025, 6, 1)) == 2
    assert RESCINDED.tier(code, date(2025, 6, 1)) == 1  # no country is capped after rescission


@pytest.mark.parametrize(
    ("on", "tier"),
    [
        (date(2025, 1, 13), 3),
        (date(2026, 1, 31), 3),
        (datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC), 3),
        (date(2026, 2, 1), 2),
        (datetime(2026, 2, 1, 0, 0, tzinfo=UTC), 2),
        # 00:30 on Feb 1 in UTC+1 is still Jan 31 in UTC.
        (datetime(2026, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))), 3),
    ],
)
def test_cambodia_leaves_tier3(on: date, tier: int) -> None:
    assert DIFFUSION.tier("KH", on) == tier


@pytest.mark.parametrize("code", ["XK", "us", "ZZ", ""])
def test_unknown_country_is_an_error(code: str) -> None:
    with pytest.raises(UnknownCountryError):
        DIFFUSION.tier(code, date(2025, 6, 1))


@pytest.mark.parametrize(
    ("on", "cap"),
    [
        (date(2024, 12, 31), 0),
        (date(2025, 1, 1), 1_583_200_000),
        (date(2025, 12, 31), 1_583_200_000),
        (date(2026, 1, 1), 4_274_640_000),
        (date(2026, 12, 31), 4_274_640_000),
        (date(2027, 1, 1), 5_066_240_000),
        (date(2031, 6, 1), 5_066_240_000),
    ],
)
def test_nveu_schedule(on: date, cap: int) -> None:
    assert DIFFUSION.nveu_cap(on) == cap


def test_quotas() -> None:
    assert DIFFUSION.lpp is not None
    assert DIFFUSION.lpp.cap == 26_900_000
    assert DIFFUSION.lpp.aggregate_groups is True
    assert DIFFUSION.allocation_cap("SG") == 790_000_000
    assert DIFFUSION.allocation_period() == "2025-2027"
    assert DIFFUSION.allocation_open(date(2027, 12, 31))
    assert not DIFFUSION.allocation_open(date(2028, 1, 1))
    assert DIFFUSION.uveu is not None
    assert (DIFFUSION.uveu.tier1_min_pct, DIFFUSION.uveu.tier2_max_pct) == (75, 7)
    assert DIFFUSION.uveu.home_min_pct == {"US": 50}
    assert DIFFUSION.tier3_treatment == "deny"


def test_post_rescission_has_no_caps() -> None:
    assert RESCINDED.lpp is None
    assert RESCINDED.country_allocation is None
    assert RESCINDED.nveu is None
    assert RESCINDED.uveu is None
    assert RESCINDED.tier3_treatment == "license_required"
    with pytest.raises(LookupError):
        RESCINDED.allocation_cap("SG")
    with pytest.raises(LookupError):
        RESCINDED.nveu_cap(date(2026, 1, 1))


def test_not_firm_lists_every_soft_number() -> None:
    assert DIFFUSION.not_firm() == [
        "tiers.tier3.MO",
        "tiers.tier3.KH",
        "lpp.cap",
        "country_allocation.cap",
        "country_allocation.g2g_multiplier",
        "country_allocation.window",
        "nveu.steps.2025Q1",
        "nveu.steps.2026Q1",
        "nveu.steps.2027Q1",
        *(f"chips.{c}.tpp" for c in CHIP_TABLE if c in NOT_FIRM_CHIPS),
    ]
    assert DIFFUSION.sureness()["nveu.steps.2026Q1"] == "reported"
    assert DIFFUSION.sureness()["lpp.cap"] == "likely"
    assert "uveu.tier1_min_pct" not in DIFFUSION.not_firm()


def _all_numbers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _all_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _all_numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


@pytest.mark.parametrize("rule_set", [DIFFUSION, RESCINDED], ids=lambda r: r.name)
def test_public_dict_is_json_with_int_numbers(rule_set: RuleSet) -> None:
    public = rule_set.to_public_dict()
    assert json.loads(json.dumps(public)) == public
    assert all(isinstance(n, int) for n in _all_numbers(public))
    assert public["name"] == rule_set.name
    assert public["version"] == rule_set.version


def test_public_dict_numbers() -> None:
    public = DIFFUSION.to_public_dict()
    assert public["effective_from"] == "2025-01-13"
    assert public["lpp"] == {"cap": 26_900_000, "aggregate_groups": True}
    assert public["country_allocation"]["cap"] == 790_000_000
    assert public["country_allocation"]["period"] == "2025-2027"
    assert public["nveu"]["steps"][1] == {"from": "2026Q1", "cap": 4_274_640_000}
    assert public["not_firm"]["lpp.cap"] == "likely"


# Loading user files ---------------------------------------------------------------
def _builtin_text(name: str = "ai-diffusion-2025") -> str:
    return (BUILTIN_DIR / f"{name}.toml").read_text()


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    return str(path)


def test_load_user_file_with_g2g_and_quarter_steps(tmp_path: Path) -> None:
    text = (
        _builtin_text()
        .replace("[country_flags]", "[country_flags]\nAE = { g2g = true }")
        .replace(
            '{ from = "2026Q1", cap = 4_274_640_000 },',
            '{ from = "2026Q1", cap = 2_000_000_000 },\n'
            '  { from = "2026Q2", cap = 3_000_000_000 },',
        )
    )
    rule_set = load_rule_set(_write(tmp_path, text))
    assert rule_set.allocation_cap("AE") == 1_580_000_000
    assert rule_set.allocation_cap("SA") == 790_000_000
    assert rule_set.nveu_cap(date(2026, 3, 31)) == 2_000_000_000
    assert rule_set.nveu_cap(date(2026, 4, 1)) == 3_000_000_000
    assert rule_set.source.endswith("custom.toml")


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ('"NZ", "NO"', '"NZ", "XK"', "tiers[0].countries", "unknown country code 'XK'"),
        ("[country_flags]", "[country_flags]\nQQ = { g2g = true }", "country_flags", "'QQ'"),
        ("cap = 26_900_000", "cap = 26900000.0", "lpp.cap", "integer"),
        ("cap = 26_900_000", "cap = -1", "lpp.cap", "greater than or equal to 0"),
        ('{ from = "2026Q1"', '{ from = "2026Q5"', "nveu.steps[1].from", "not a quarter"),
        ('{ from = "2027Q1"', '{ from = "2025Q3"', "nveu.steps", "increasing quarter"),
        ("tier2_max_pct = 7", "tier2_max_pct = 107", "uveu.tier2_max_pct", "less than or equal"),
        ("tier2_max_pct = 7", "tier2_max_pct = 7\nmystery = 1", "uveu.mystery", "Extra inputs"),
        ('version = "2025-01-13.1"\n', "", "version", "Field required"),
        ('tier3_treatment = "deny"', 'tier3_treatment = "maybe"', "tier3_treatment", "deny"),
        ('countries = ["MO"]', 'countries = ["CN"]', "tiers", "overlapping"),
        (
            'tpp = 15_832\ndie_area_mm2 = 814\n\n[[chips]]\nid = "H200-SXM"',
            'tpp = 15_832\ndie_area_mm2 = 814\n\n[[chips]]\nid = "H100-SXM"',
            "chips",
            "twice",
        ),
        (
            "window_to = 2027-12-31",
            "window_to = 2024-12-31",
            "country_allocation.window_to",
            "before",
        ),
        (
            "effective_from = 2025-01-13",
            "effective_from = 2025-01-13\neffective_to = 2024-01-01",
            "effective_to",
            "before",
        ),
    ],
)
def test_errors_name_file_and_field(
    tmp_path: Path, old: str, new: str, field: str, message: str
) -> None:
    text = _builtin_text()
    assert old in text
    path = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(RuleSetError) as info:
        load_rule_set(path)
    text_of_error = str(info.value)
    assert text_of_error.startswith(f"{path}: {field}: "), text_of_error
    assert message in text_of_error


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "name = \n")
    with pytest.raises(RuleSetError, match=r"custom\.toml: \(toml\): "):
        load_rule_set(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RuleSetError, match=r"nope\.toml: \(file\): cannot read"):
        load_rule_set(str(tmp_path / "nope.toml"))


def test_unknown_builtin_name() -> None:
    with pytest.raises(RuleSetError, match="not a built-in rule set"):
        load_rule_set("ai-diffusion-2099")


def test_parse_rule_set_without_optional_sections() -> None:
    rule_set = parse_rule_set(
        b'name = "bare"\nversion = "1"\neffective_from = 2025-01-01\n', "bare.toml"
    )
    assert rule_set.tier("SG", date(2025, 1, 1)) == 2
    assert rule_set.chips() == ()
    assert rule_set.not_firm() == []
    assert rule_set.in_force(date(2030, 1, 1))
    assert not rule_set.in_force(date(2024, 12, 31))


def test_dated_membership_can_move_a_country_between_tiers() -> None:
    rule_set = parse_rule_set(
        b'name = "moves"\nversion = "1"\neffective_from = 2025-01-01\ndefault_tier = 1\n'
        b'[[tiers]]\ntier = 2\ncountries = ["AE"]\nuntil = 2026-03-01\n'
        b'[[tiers]]\ntier = 3\ncountries = ["AE"]\nfrom = 2027-01-01\n',
        "moves.toml",
    )
    assert rule_set.tier("AE", date(2026, 2, 28)) == 2
    assert rule_set.tier("AE", date(2026, 3, 1)) == 1
    assert rule_set.tier("AE", date(2027, 1, 1)) == 3
