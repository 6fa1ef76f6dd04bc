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
    allocation_bucket,
    bucket_cap,
    builtin_rule_sets,
    footprint_bucket,
    load_rule_set,
    lpp_period,
    nveu_bucket,
)
from ledger.policy.ruleset import parse_rule_set
from ledger.policy.types import COUNTRY_ALLOCATION, LICENSE, LPP, NVEU, BucketKey

DIFFUSION = load_rule_set("ai-diffusion-2025")
RESCINDED = load_rule_set("post-rescission-2025")
CONTROLS = load_rule_set("us-controls-2026")
ALL = [DIFFUSION, RESCINDED, CONTROLS]
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
NOT_FIRM_CHIPS = {
    "H100-PCIE", "H800-PCIE", "L40S", "GB200", "B300", "GB300", "MI350X", "MI355X", "GAUDI3"
}


def test_builtin_names() -> None:
    assert builtin_rule_sets() == ["ai-diffusion-2025", "post-rescission-2025", "us-controls-2026"]
    assert DIFFUSION.name == "ai-diffusion-2025"
    assert RESCINDED.name == "post-rescission-2025"
    assert DIFFUSION.effective_from == date(2025, 1, 13)
    assert RESCINDED.effective_from == date(2025, 5, 13)


@pytest.mark.parametrize("rule_set", ALL, ids=lambda r: r.name)
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
    # DRAM bandwidth where the China rule needs it (likely), and doubtful values noted.
    assert {c.id: c.dram_bandwidth_gbs for c in rule_set.chips() if c.dram_bandwidth_gbs} == {
        "H100-SXM": 3_350, "H200-SXM": 4_800, "H20": 4_000}
    assert all(c.bandwidth_sure == "likely" for c in rule_set.chips() if c.dram_bandwidth_gbs)
    assert {c.id for c in rule_set.chips() if c.sure != "firm"} == NOT_FIRM_CHIPS
    for doubtful in ("MI350X", "MI355X"):
        chip = rule_set.chip(doubtful)
        assert chip is not None and "needs a ruling" in chip.note.lower()
    gb200 = rule_set.chip("GB200")
    assert gb200 is not None and "TWO GPUs" in gb200.note


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
    assert CONTROLS.tier(code, date(2026, 6, 1)) == 3


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


def _nveu_cap(on: date) -> int | None:
    return bucket_cap(DIFFUSION, nveu_bucket("g42", "AE"), datetime(on.year, on.month, on.day,
                                                                    tzinfo=UTC), {})


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
    assert _nveu_cap(on) == cap


AT = datetime(2026, 6, 1, tzinfo=UTC)


def test_quotas_and_their_caps_at_an_instant() -> None:
    lpp = DIFFUSION.quota("lpp")
    assert (lpp.cap, lpp.scope, lpp.period) == (26_900_000, "consignee_group", "calendar_year")
    assert bucket_cap(DIFFUSION, BucketKey(LPP, "group:g", "2026"), AT, {}) == 26_900_000
    sg = allocation_bucket(DIFFUSION, "SG")
    assert sg == BucketKey(COUNTRY_ALLOCATION, "SG", "2025-2027", country="SG")
    assert bucket_cap(DIFFUSION, sg, datetime(2027, 12, 31, tzinfo=UTC), {}) == 790_000_000
    # A closed window grants nothing (0, as the engine decides), not "no cap".
    assert bucket_cap(DIFFUSION, sg, datetime(2028, 1, 1, tzinfo=UTC), {}) == 0
    assert bucket_cap(DIFFUSION, BucketKey(LICENSE, "L", "all"), AT, {"L": 5}) == 5
    assert bucket_cap(DIFFUSION, BucketKey(LICENSE, "L", "all"), AT, {}) is None
    assert bucket_cap(DIFFUSION, footprint_bucket("op", "SG"), AT, {}) is None
    uveu = DIFFUSION.uveu
    assert uveu is not None
    assert (uveu.tier1_min_pct, uveu.tier2_max_pct, uveu.headquarters_in) == (75, 7, "tier1")
    assert uveu.home_min_pct == {"US": 50}
    assert lpp_period(DIFFUSION, date(2026, 6, 1)) == (date(2026, 1, 1), date(2027, 1, 1))


@pytest.mark.parametrize("rule_set", [RESCINDED, CONTROLS], ids=lambda r: r.name)
def test_no_diffusion_quotas_after_rescission(rule_set: RuleSet) -> None:
    assert rule_set.spec.quotas == {}
    assert rule_set.uveu is None
    for kind, key in ((LPP, "group:g"), (COUNTRY_ALLOCATION, "SG"), (NVEU, "g42:AE")):
        assert bucket_cap(rule_set, BucketKey(kind, key, "all"), AT, {}) is None
    assert lpp_period(rule_set, AT.date()) is None
    with pytest.raises(LookupError):
        allocation_bucket(rule_set, "SG")


def test_not_firm_lists_every_soft_number() -> None:
    not_firm = DIFFUSION.not_firm()
    assert not_firm[:10] == [
        "groups.tier3.MO",
        "groups.tier3.KH",
        "groups.g2g",
        # The affiliates rule's dates (for screening), as in us-controls-2026.
        "measures.affiliates_rule.suspended.2025-11-10",
        "measures.affiliates_rule.in_force.2026-11-10",
        "quotas.nveu.schedule.2025Q1",
        "quotas.nveu.schedule.2026Q1",
        "quotas.nveu.schedule.2027Q1",
        "quotas.lpp.cap",
        "quotas.country_allocation.cap",
    ]
    assert {f"chips.{c}.tpp" for c in NOT_FIRM_CHIPS} <= set(not_firm)
    assert DIFFUSION.sureness()["quotas.nveu.schedule.2026Q1"] == "reported"
    assert DIFFUSION.sureness()["quotas.lpp.cap"] == "likely"
    assert "uveu" not in not_firm
    controls = CONTROLS.sureness()
    assert controls["entities.uae_approved"] == "reported"
    assert controls["groups.a5.AE"] == "likely"
    assert controls["measures.affiliates_rule.suspended.2025-11-10"] == "suspended"


def _all_numbers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _all_numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _all_numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _provenance_everywhere(public: dict[str, Any]) -> None:
    for group in public["groups"].values():
        assert group["provenance"] or all(m["provenance"] for m in group["members"])
    for quota in public["quotas"]:
        assert quota["provenance"]["status"] in ("firm", "likely", "reported", "draft",
                                                 "suspended")
    for chip in public["chips"]:
        assert chip["provenance"]["source"]
        assert (chip["dram_bandwidth_gbs"] is None) == (chip["bandwidth_provenance"] is None)
    for entity in public["entities"].values():
        assert entity["provenance"]["source"]
    for step in public["steps"]:
        assert step["rule"].split("-")[0] in ("AID", "PRS", "USC")


@pytest.mark.parametrize("rule_set", ALL, ids=lambda r: r.name)
def test_public_dict_is_json_with_int_numbers_and_provenance(rule_set: RuleSet) -> None:
    public = rule_set.to_public_dict()
    assert json.loads(json.dumps(public)) == public
    assert all(isinstance(n, int) for n in _all_numbers(public))
    assert public["name"] == rule_set.name
    assert public["version"] == rule_set.version
    _provenance_everywhere(public)


def test_public_dict_numbers() -> None:
    public = DIFFUSION.to_public_dict()
    assert public["effective_from"] == "2025-01-13"
    quotas = {q["name"]: q for q in public["quotas"]}
    assert quotas["lpp"]["cap"] == 26_900_000
    assert quotas["country_allocation"]["window"] == {"from": "2025-01-01", "to": "2027-12-31"}
    assert quotas["nveu"]["schedule"][1] == {"from": "2026Q1", "cap": 4_274_640_000}
    assert public["not_firm"]["quotas.lpp.cap"] == "likely"
    assert [s["id"] for s in public["steps"]] == [
        "tier3", "uveu-tier1", "uveu", "tier1", "nveu", "lpp", "license"]
    controls = CONTROLS.to_public_dict()
    assert controls["entities"]["uae_approved"]["until"] == "2027-04-07"
    assert [s["rule"] for s in controls["steps"]] == [
        "USC-7", "USC-7", "USC-3", "USC-4", "USC-8", "USC-2", "USC-5"]


def test_measures_are_dated_data() -> None:
    state = CONTROLS.measure_state
    assert state("affiliates_rule", date(2025, 9, 28)) is None
    assert state("affiliates_rule", date(2025, 9, 29)) == "in_force"
    assert state("affiliates_rule", date(2025, 11, 10)) == "suspended"
    assert state("affiliates_rule", date(2026, 11, 9)) == "suspended"
    assert state("affiliates_rule", date(2026, 11, 10)) == "in_force"


# Loading user files ---------------------------------------------------------------
def _builtin_text(name: str = "ai-diffusion-2025") -> str:
    return (BUILTIN_DIR / f"{name}.toml").read_text()


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    return str(path)


G2G_AE = (
    '\n[[groups.g2g.members]]\ncountries = ["AE"]\n'
    'provenance = { source = "test", date = 2025-01-01, status = "reported" }\n'
)


def test_load_user_file_with_g2g_and_quarter_steps(tmp_path: Path) -> None:
    text = (
        _builtin_text().replace(
            '{ from = "2026Q1", cap = 4_274_640_000 },',
            '{ from = "2026Q1", cap = 2_000_000_000 },\n'
            '  { from = "2026Q2", cap = 3_000_000_000 },',
        )
        + G2G_AE
    )
    rule_set = load_rule_set(_write(tmp_path, text))
    ae, sa = allocation_bucket(rule_set, "AE"), allocation_bucket(rule_set, "SA")
    assert bucket_cap(rule_set, ae, AT, {}) == 1_580_000_000
    assert bucket_cap(rule_set, sa, AT, {}) == 790_000_000
    nveu = nveu_bucket("g42", "AE")
    assert bucket_cap(rule_set, nveu, datetime(2026, 3, 31, tzinfo=UTC), {}) == 2_000_000_000
    assert bucket_cap(rule_set, nveu, datetime(2026, 4, 1, tzinfo=UTC), {}) == 3_000_000_000
    assert rule_set.source.endswith("custom.toml")


def test_a_rule_set_may_override_a_chip(tmp_path: Path) -> None:
    text = _builtin_text() + (
        '\n[[chips]]\nid = "MI350X"\nname = "AMD MI350X"\ntpp = 55_365\n'
        'provenance = { source = "our ruling", date = 2026-12-01, status = "firm" }\n'
    )
    rule_set = load_rule_set(_write(tmp_path, text))
    assert rule_set.chip_tpp("MI350X") == 55_365
    assert [c.id for c in rule_set.chips()] == list(CHIP_TABLE)
    assert DIFFUSION.chip_tpp("MI350X") == 36_910


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ('"NZ", "NO"', '"NZ", "XK"', "groups.tier1.members[0].countries",
         "unknown country code 'XK'"),
        ("cap = 26_900_000", "cap = 26900000.0", "quotas.lpp.cap", "integer"),
        ("cap = 26_900_000", "cap = -1", "quotas.lpp.cap", "greater than or equal to 0"),
        ('{ from = "2026Q1"', '{ from = "2026Q5"', "quotas.nveu.schedule[1].from",
         "not a quarter"),
        ('{ from = "2027Q1"', '{ from = "2025Q3"', "quotas.nveu", "increasing order"),
        ("tier2_max_pct = 7", "tier2_max_pct = 107", "uveu.tier2_max_pct", "less than or equal"),
        ("tier2_max_pct = 7", "tier2_max_pct = 7\nmystery = 1", "uveu.mystery", "Extra inputs"),
        ("tier2_max_pct = 7", "tier2_max_pct = 7\nheadquarters = 1", "uveu.headquarters",
         "Extra inputs"),
        ('version = "2026-12-01.1"\n', "", "version", "Field required"),
        ('outcome = "prohibited"', 'outcome = "maybe"', "steps[0].outcome", "allowed"),
        ('period = "calendar_year"', 'period = "fortnight"', "quotas.lpp.period",
         "calendar_year"),
        ('status = "likely" }\n\n[quotas.country_allocation]',
         'status = "probably" }\n\n[quotas.country_allocation]',
         "quotas.lpp.provenance.status", "firm"),
        ('destination_in = ["tier2"]', 'destination_in = ["tier4"]',
         "quotas.country_allocation.applies_when.destination_in", "unknown group 'tier4'"),
        ('{ party_hq_in = ["tier3"] }', '{ party_hq_in = ["tier-3"] }',
         "steps[0].any_of[1].party_hq_in", "unknown group 'tier-3'"),
        ('quotas = ["lpp"]', 'quotas = ["lppp"]', "steps[5].quotas[0]", "unknown quota 'lppp'"),
        ('headquarters_in = "tier1"', 'headquarters_in = "tierone"', "uveu.headquarters_in",
         "unknown group"),
        ('id = "nveu"', 'id = "lpp"', "steps[5].id", "earlier step"),
        ('multipliers = { g2g = 2 }', 'multipliers = { g2x = 2 }',
         "quotas.country_allocation.multipliers", "unknown group 'g2x'"),
        ("window = { from = 2025-01-01, to = 2027-12-31 }",
         "window = { from = 2025-01-01, to = 2024-12-31 }",
         "quotas.country_allocation.window", "before"),
        ('outcome = "license_required"\nquotas = ["country_allocation"]',
         'outcome = "allowed"\npath = "lpp"\nquotas = ["country_allocation"]',
         "steps[6]", "last step must decide every line"),
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


MINIMAL = (
    b'name = "bare"\nversion = "1"\neffective_from = 2025-01-01\n'
    b'[[steps]]\nid = "free"\nrule = "X-1"\noutcome = "allowed"\npath = "tier1"\n'
    b'reason = "everything is allowed"\n'
)


def test_parse_minimal_rule_set() -> None:
    rule_set = parse_rule_set(MINIMAL, "bare.toml")
    assert rule_set.tier("SG", date(2025, 1, 1)) == 2
    assert [c.id for c in rule_set.chips()] == list(CHIP_TABLE)  # the shared catalog
    assert all(p.startswith("chips.") for p in rule_set.not_firm())
    assert rule_set.in_force(date(2030, 1, 1))
    assert not rule_set.in_force(date(2024, 12, 31))
    with pytest.raises(RuleSetError, match=r"bare\.toml: steps: at least one step"):
        parse_rule_set(MINIMAL.split(b"[[steps]]")[0], "bare.toml")


PROV = b'provenance = { source = "t", date = 2025-01-01, status = "firm" }\n'


def test_dated_membership_can_move_a_country_between_groups() -> None:
    rule_set = parse_rule_set(
        MINIMAL + b'[tiers]\ntier1 = "one"\ntier3 = "three"\nother = 2\n'
        b'[groups.one]\ntitle = "One"\nrule = "X-1"\n'
        b'[[groups.one.members]]\ncountries = ["AE"]\nfrom = 2026-03-01\n' + PROV +
        b'[groups.three]\ntitle = "Three"\nrule = "X-1"\n'
        b'[[groups.three.members]]\ncountries = ["AE"]\nfrom = 2027-01-01\n' + PROV,
        "moves.toml",
    )
    assert rule_set.tier("AE", date(2026, 2, 28)) == 2
    assert rule_set.tier("AE", date(2026, 3, 1)) == 1
    assert rule_set.tier("AE", date(2027, 1, 1)) == 3
