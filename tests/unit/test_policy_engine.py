"""The policy engine, scenario by scenario, with the exact numbers of docs/rules/ worked cases.

Each scenario is: lines (decided in order), stored balances, time, rule set,
and what each line must come to: a path, or the exact violations
(constraint, key, cap, used, requested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ledger.policy import (
    PolicyInputError,
    RuleSet,
    UnknownCountryError,
    allocation_bucket,
    country_tier,
    footprint_bucket,
    license_bucket,
    load_rule_set,
    lpp_bucket,
    needs,
    nveu_bucket,
)
from ledger.policy.types import (
    COUNTRY_ALLOCATION,
    FOOTPRINT,
    LICENSE,
    LPP,
    NVEU,
    Balance,
    BucketKey,
    Draw,
    LicenseInfo,
    LineRequest,
)

from .policy_fixtures import (
    ALLOCATION_CAP,
    AT,
    DIFFUSION,
    H100,
    LPP_CAP,
    RESCINDED,
    consignee,
    decide,
    licence,
    line,
    nveu,
    operator,
    uveu,
)

V = tuple[str, str, int, int, int]  # (constraint, key, cap, used, requested)
Outcome = str | list[V]

SG_LAB = consignee("sg-lab", "SG")
SG_LPP = BucketKey(LPP, "consignee:sg-lab", "2026")
SG_ALLOC = BucketKey(COUNTRY_ALLOCATION, "SG", "2025-2027", country="SG")
A1 = consignee("a1", "TH", group="g")
A2 = consignee("a2", "TH", group="g")
SG_LICENCE = licence("L-SG", "SG", 10**9)
HYPER = uveu("hyper", "US")
US_1E9 = {footprint_bucket("hyper", "US"): Balance(committed=10**9)}
G42 = nveu("g42", "AE")
AE_NVEU = nveu_bucket("g42", "AE")
AE_LAB = consignee("ae-lab", "AE")
AE_LPP = BucketKey(LPP, "consignee:ae-lab", "2026")
NVEU_2025 = 1_583_200_000
NVEU_2026 = 4_274_640_000
def no_licence(requested: int, destination: str = "SG") -> V:
    """No licence given where one is needed: a rule, not a cap (key: the destination)."""
    return ("license_required", destination, 0, 0, requested)


def full(bucket: BucketKey, cap: int, held: int = 0) -> dict[BucketKey, Balance]:
    return {bucket: Balance(committed=cap - held, held=held)}


@dataclass
class Case:
    id: str
    lines: Sequence[LineRequest]
    expect: Sequence[Outcome]
    balances: Mapping[BucketKey, Balance] = field(default_factory=dict)
    at: datetime = AT
    rule_set: RuleSet = DIFFUSION


def _outcomes(case: Case) -> list[Outcome]:
    decision = decide(case.lines, case.balances, case.at, case.rule_set)
    out: list[Outcome] = []
    for d in decision.lines:
        if d.allowed:
            assert d.path is not None and d.violations == ()
            out.append(d.path)
        else:
            assert d.draws == ()
            out.append([(v.constraint, v.key, v.cap, v.used, v.requested) for v in d.violations])
    return out


LICENCE_CASES: list[tuple[str, LicenseInfo, Outcome]] = [
    ("valid to today (inclusive)", licence("L", valid_to=date(2026, 6, 1)), "license"),
    ("valid from today", licence("L", valid_from=date(2026, 6, 1)), "license"),
    (
        "expired yesterday",
        licence("L", valid_to=date(2026, 5, 31)),
        [
            ("lpp", "consignee:sg-lab", LPP_CAP, 0, 26_914_400),
            ("license", "L", 0, 0, 26_914_400),
        ],
    ),
    (
        "not yet valid",
        licence("L", valid_from=date(2026, 6, 2)),
        [
            ("lpp", "consignee:sg-lab", LPP_CAP, 0, 26_914_400),
            ("license", "L", 0, 0, 26_914_400),
        ],
    ),
    (
        "for another country",
        licence("L", country="MY"),
        [
            ("lpp", "consignee:sg-lab", LPP_CAP, 0, 26_914_400),
            ("license", "L", 0, 0, 26_914_400),
        ],
    ),
    (
        "for another consignee",
        licence("L", consignee_id="sg-other"),
        [
            ("lpp", "consignee:sg-lab", LPP_CAP, 0, 26_914_400),
            ("license", "L", 0, 0, 26_914_400),
        ],
    ),
    ("for this consignee", licence("L", consignee_id="sg-lab"), "license"),
    ("exactly its quantity", licence("L", tpp=26_914_400), "license"),
    (
        "one TPP short",
        licence("L", tpp=26_914_399),
        [
            ("lpp", "consignee:sg-lab", LPP_CAP, 0, 26_914_400),
            ("license", "L", 26_914_399, 0, 26_914_400),
        ],
    ),
]


CASES = [
    # LPP -------------------------------------------------------------------------
    Case("lpp 1699 H100", [line("SG", 1699 * H100, cons=SG_LAB)], ["lpp"]),
    Case(
        "lpp 1700 H100 no licence",
        [line("SG", 1700 * H100, cons=SG_LAB)],
        [[("lpp", "consignee:sg-lab", LPP_CAP, 0, 26_914_400), no_licence(26_914_400)]],
    ),
    Case(
        "example 1: 1699 then 1 more without licence",
        [line("SG", 1699 * H100, cons=SG_LAB), line("SG", H100, cons=SG_LAB)],
        ["lpp", [("lpp", "consignee:sg-lab", LPP_CAP, 26_898_568, H100), no_licence(H100)]],
    ),
    Case(
        "example 1: the extra H100 with an SG licence",
        [line("SG", 1699 * H100, cons=SG_LAB), line("SG", H100, cons=SG_LAB, lic=SG_LICENCE)],
        ["lpp", "license"],
    ),
    Case(
        "lpp exactly at cap", [line("SG", 100, cons=SG_LAB)], ["lpp"], full(SG_LPP, LPP_CAP - 100)
    ),
    Case(
        "lpp one TPP over (holds count)",
        [line("SG", 101, cons=SG_LAB)],
        [[("lpp", "consignee:sg-lab", LPP_CAP, LPP_CAP - 100, 101), no_licence(101)]],
        full(SG_LPP, LPP_CAP - 100, held=5),
    ),
    # Consignee groups (example 2) ------------------------------------------------
    Case(
        "example 2: 900 to a1, 800 to a2 denied, 799 to a2",
        [
            line("TH", 900 * H100, cons=A1),
            line("TH", 800 * H100, cons=A2),
            line("TH", 799 * H100, cons=A2),
        ],
        [
            "lpp",
            [("lpp", "group:g", LPP_CAP, 900 * H100, 800 * H100), no_licence(800 * H100, "TH")],
            "lpp",
        ],
    ),
    # Calendar year ------------------------------------------------------------------
    Case(
        "lpp 2025 full: Dec 31 23:59:59 denied",
        [line("SG", H100, cons=SG_LAB)],
        [[("lpp", "consignee:sg-lab", LPP_CAP, LPP_CAP, H100), no_licence(H100)]],
        full(BucketKey(LPP, "consignee:sg-lab", "2025"), LPP_CAP),
        datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
    ),
    Case(
        "lpp 2025 full: Jan 1 00:00 is a new bucket",
        [line("SG", H100, cons=SG_LAB)],
        ["lpp"],
        full(BucketKey(LPP, "consignee:sg-lab", "2025"), LPP_CAP),
        datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC),
    ),
    Case(
        "lpp year is the UTC year (00:30 at UTC+1 is still Dec 31)",
        [line("SG", H100, cons=SG_LAB)],
        [[("lpp", "consignee:sg-lab", LPP_CAP, LPP_CAP, H100), no_licence(H100)]],
        full(BucketKey(LPP, "consignee:sg-lab", "2025"), LPP_CAP),
        datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
    ),
    # NVEU and its quarter steps ------------------------------------------------------
    Case(
        "nveu fits exactly at the 2025 cap",
        [line("AE", H100, G42, AE_LAB)],
        ["nveu"],
        full(AE_NVEU, NVEU_2025 - H100),
        datetime(2025, 12, 31, 23, 59, tzinfo=UTC),
    ),
    Case(
        "nveu over the 2025 cap falls to lpp",
        [line("AE", H100 + 1, G42, AE_LAB)],
        ["lpp"],
        full(AE_NVEU, NVEU_2025 - H100),
        datetime(2025, 12, 31, 23, 59, tzinfo=UTC),
    ),
    Case(
        "nveu 2026Q1 cap applies on Jan 1",
        [line("AE", 10**9, G42, AE_LAB)],
        ["nveu"],
        full(AE_NVEU, NVEU_2025),
        datetime(2026, 1, 1, tzinfo=UTC),
    ),
    Case(
        "nveu, lpp and licence all fail: every one named",
        [line("AE", 500_000_000, G42, AE_LAB)],
        [
            [
                ("nveu", "g42:AE", NVEU_2026, NVEU_2026 - 1, 500_000_000),
                ("lpp", "consignee:ae-lab", LPP_CAP, 0, 500_000_000),
                no_licence(500_000_000, "AE"),
            ]
        ],
        full(AE_NVEU, NVEU_2026 - 1),
    ),
    Case(
        "nveu full, lpp full, licence ok but allocation short",
        [line("AE", H100, G42, AE_LAB, licence("L-AE", "AE", 10**9))],
        [
            [
                ("nveu", "g42:AE", NVEU_2026, NVEU_2026, H100),
                ("lpp", "consignee:ae-lab", LPP_CAP, LPP_CAP, H100),
                ("country_allocation", "AE", ALLOCATION_CAP, ALLOCATION_CAP - 1, H100),
            ]
        ],
        {
            **full(AE_NVEU, NVEU_2026),
            **full(AE_LPP, LPP_CAP),
            **full(
                BucketKey(COUNTRY_ALLOCATION, "AE", "2025-2027", country="AE"), ALLOCATION_CAP - 1
            ),
        },
    ),
    Case(
        "an NVEU for AE shipping to SG is an ordinary operator",
        [line("SG", 2 * LPP_CAP, nveu("g42", "AE"), SG_LAB)],
        [[("lpp", "consignee:sg-lab", LPP_CAP, 0, 2 * LPP_CAP), no_licence(2 * LPP_CAP)]],
    ),
    # Licences ------------------------------------------------------------------------
    *(
        Case(f"licence {name}", [line("SG", 1700 * H100, cons=SG_LAB, lic=lic)], [expect])
        for name, lic, expect in LICENCE_CASES
    ),
    Case(
        "two lines share one licence: the second sees the first",
        [
            line("SG", 600_000_000, cons=SG_LAB, lic=licence("L", tpp=10**9)),
            line("SG", 400_000_001, cons=SG_LAB, lic=licence("L", tpp=10**9)),
        ],
        [
            "license",
            [
                ("lpp", "consignee:sg-lab", LPP_CAP, 0, 400_000_001),
                ("license", "L", 10**9, 600_000_000, 400_000_001),
                ("country_allocation", "SG", ALLOCATION_CAP, 600_000_000, 400_000_001),
            ],
        ],
    ),
    # Country allocation (example 3) --------------------------------------------------
    Case(
        "example 3: up to exactly 790,000,000 then the next TPP is denied",
        [
            line("SG", 500_000_000, cons=SG_LAB, lic=SG_LICENCE),
            line("SG", 290_000_000, cons=SG_LAB, lic=SG_LICENCE),
            line("SG", 1, cons=SG_LAB, lic=SG_LICENCE),
        ],
        [
            "license",
            "license",
            [
                ("lpp", "consignee:sg-lab", LPP_CAP, LPP_CAP, 1),
                ("country_allocation", "SG", ALLOCATION_CAP, ALLOCATION_CAP, 1),
            ],
        ],
        full(SG_LPP, LPP_CAP),
    ),
    Case(
        "allocation grants nothing after its window",
        [line("SG", 1700 * H100, cons=SG_LAB, lic=licence("L", valid_to=date(2028, 12, 31)))],
        [
            [
                ("lpp", "consignee:sg-lab", LPP_CAP, 0, 26_914_400),
                ("country_allocation", "SG", 0, 0, 26_914_400),
            ]
        ],
        at=datetime(2028, 1, 1, tzinfo=UTC),
    ),
    # UVEU (examples 4 and 5) -----------------------------------------------------------
    Case(
        "example 4: 75,268,817 to a Tier 2 country passes",
        [line("SG", 75_268_817, HYPER)],
        ["uveu"],
        US_1E9,
    ),
    Case(
        "example 4: 75,268,818 is denied",
        [line("SG", 75_268_818, HYPER)],
        [[("uveu", "SG", 75_268_817, 75_268_818, 75_268_818)]],
        US_1E9,
    ),
    Case(
        "example 4 with a declared footprint instead of ledger entries",
        [line("SG", 75_268_818, uveu("hyper", "US", US=10**9))],
        [[("uveu", "SG", 75_268_817, 75_268_818, 75_268_818)]],
    ),
    Case(
        "example 5: 924,731,183 to Tier 1 (non-US) passes",
        [line("DE", 924_731_183, HYPER)],
        ["tier1"],
        {**US_1E9, footprint_bucket("hyper", "SG"): Balance(held=75_268_817)},
    ),
    Case(
        "example 5: one more TPP is denied on the US share",
        [line("DE", 924_731_184, HYPER)],
        [[("uveu", "US", 10**9, 10**9 + 1, 924_731_184)]],
        {**US_1E9, footprint_bucket("hyper", "SG"): Balance(held=75_268_817)},
    ),
    Case(
        "uveu tier1 share at its edge passes",
        [
            line(
                "ID",
                40_000_000,
                uveu("eu", "GB", GB=750_000_000, TH=70_000_000, MY=70_000_000, SG=70_000_000),
            )
        ],
        ["uveu"],
    ),
    Case(
        "uveu tier1 share one TPP over",
        [
            line(
                "ID",
                40_000_001,
                uveu("eu", "GB", GB=750_000_000, TH=70_000_000, MY=70_000_000, SG=70_000_000),
            )
        ],
        [[("uveu", "tier1", 250_000_000, 250_000_001, 40_000_001)]],
    ),
    Case("uveu shipping to the US: tier1 path", [line("US", 10**12, HYPER)], ["tier1"], US_1E9),
    Case(
        "uveu: line 2 passes only because of line 1",
        [line("US", 10**9, HYPER), line("SG", 75_268_817, HYPER)],
        ["tier1", "uveu"],
    ),
    Case(
        "uveu: same lines the other way round",
        [line("SG", 75_268_817, HYPER), line("US", 10**9, HYPER)],
        [
            [
                ("uveu", "SG", 0, 75_268_817, 75_268_817),
                ("uveu", "tier1", 0, 75_268_817, 75_268_817),
                ("uveu", "US", 0, 75_268_817, 75_268_817),
            ],
            "tier1",
        ],
    ),
    Case(
        "uveu is not capped by lpp or allocation",
        [line("SG", 2 * LPP_CAP, HYPER)],
        ["uveu"],
        {**US_1E9, **full(SG_ALLOC, ALLOCATION_CAP)},
    ),
    # Tier 1 and Tier 3 ---------------------------------------------------------------
    Case("tier1 destination, no cap", [line("JP", 10**12, operator("us-op", "US"))], ["tier1"]),
    Case(
        "AIA needs parties headquartered in Tier 1: an SG operator to JP is decided as Tier 2",
        [line("JP", 10**12)],
        [[("lpp", "consignee:jp-lab", LPP_CAP, 0, 10**12), no_licence(10**12, "JP")]],
    ),
    *(
        Case(f"tier3 destination {code}", [line(code, H100)], [[("tier3", code, 0, 0, H100)]])
        for code in ["CN", "MO", "RU", "IR", "KP", "HK"]
    ),
    Case(
        "operator headquartered in CN shipping to MY",
        [line("MY", H100, operator("cn-op", "CN"))],
        [[("tier3", "CN", 0, 0, H100)]],
    ),
    Case(
        "a UVEU cannot ship to Tier 3",
        [line("CN", H100, HYPER)],
        [[("tier3", "CN", 0, 0, H100)]],
        US_1E9,
    ),
    Case(
        "Cambodia on 2026-01-31 is Tier 3",
        [line("KH", H100)],
        [[("tier3", "KH", 0, 0, H100)]],
        at=datetime(2026, 1, 31, 23, 59, tzinfo=UTC),
    ),
    Case(
        "Cambodia on 2026-02-01 is Tier 2",
        [line("KH", H100)],
        ["lpp"],
        at=datetime(2026, 2, 1, tzinfo=UTC),
    ),
    # Lines are decided independently of denials (example 7) ------------------------
    Case(
        "[SG ok, CN]: the SG line is allowed, the request is not",
        [line("SG", H100), line("CN", H100)],
        ["lpp", [("tier3", "CN", 0, 0, H100)]],
    ),
    Case(
        "[CN, SG]: a denial draws nothing and the next line is still decided",
        [line("CN", H100), line("SG", LPP_CAP, cons=SG_LAB)],
        [[("tier3", "CN", 0, 0, H100)], "lpp"],
    ),
    # Post-rescission ------------------------------------------------------------------
    Case(
        "post-rescission: no Tier 2 caps",
        [line("SG", 10**12, cons=SG_LAB)],
        ["tier1"],
        full(SG_LPP, LPP_CAP),
        rule_set=RESCINDED,
    ),
    Case(
        "post-rescission: NVEU and UVEU have no caps (AE needs a licence: D:4, PRS-2)",
        [line("AE", 10**12, G42, AE_LAB, licence("L-AE", "AE", 10**12)),
         line("SG", 10**12, HYPER)],
        ["license", "tier1"],
        rule_set=RESCINDED,
    ),
    Case(
        "post-rescission: Tier 3 without licence",
        [line("CN", H100)],
        [[no_licence(H100, "CN")]],
        rule_set=RESCINDED,
    ),
    Case(
        "post-rescission: Tier 3 with a licence",
        [line("CN", H100, lic=licence("L-CN", "CN", H100))],
        ["license"],
        rule_set=RESCINDED,
    ),
    Case(
        "post-rescission: licence too small",
        [line("CN", H100 + 1, lic=licence("L-CN", "CN", H100))],
        [[("license", "L-CN", H100, 0, H100 + 1)]],
        rule_set=RESCINDED,
    ),
    Case(
        "post-rescission: operator HQ in CN needs a licence for MY",
        [line("MY", H100, operator("cn-op", "CN"), lic=licence("L-MY", "MY"))],
        ["license"],
        rule_set=RESCINDED,
    ),
    Case(
        "post-rescission: Cambodia after leaving D:5 stays in D:1 (PRS-2)",
        [line("KH", H100)],
        [[no_licence(H100, "KH")]],
        at=datetime(2026, 2, 1, tzinfo=UTC),
        rule_set=RESCINDED,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_scenarios(case: Case) -> None:
    assert _outcomes(case) == list(case.expect)


def test_draws_of_a_licence_line_have_caps_filled() -> None:
    decision = decide(
        [line("SG", 1699 * H100, cons=SG_LAB), line("SG", H100, cons=SG_LAB, lic=SG_LICENCE)]
    )
    assert decision.allowed
    assert decision.rule_set == "ai-diffusion-2025"
    assert decision.rule_set_version == DIFFUSION.version
    lpp_line, licence_line = decision.lines
    fp = footprint_bucket("op", "SG")
    assert lpp_line.draws == (Draw(SG_LPP, 26_898_568, LPP_CAP), Draw(fp, 26_898_568, None))
    assert licence_line.draws == (
        Draw(BucketKey(LICENSE, "L-SG", "all", country="SG"), H100, 10**9),
        Draw(SG_ALLOC, H100, ALLOCATION_CAP),
        Draw(fp, H100, None),
    )


def test_nveu_draw_cap_follows_the_date() -> None:
    decision = decide([line("AE", H100, G42, AE_LAB)], at=datetime(2027, 3, 1, tzinfo=UTC))
    assert decision.lines[0].draws[0] == Draw(AE_NVEU, H100, 5_066_240_000)
    assert BucketKey(NVEU, "g42:AE", "all", operator_id="g42", country="AE") == AE_NVEU


def test_every_allowed_line_draws_its_footprint() -> None:
    us_op = operator("op", "US")
    decision = decide([line("JP", 5, us_op), line("SG", 7, HYPER), line("CN", 1)], US_1E9)
    assert decision.lines[0].draws == (Draw(footprint_bucket("op", "JP"), 5, None),)
    assert decision.lines[1].draws == (Draw(footprint_bucket("hyper", "SG"), 7, None),)
    assert decision.lines[2].draws == ()
    assert footprint_bucket("hyper", "SG") == BucketKey(
        FOOTPRINT, "hyper:SG", "all", operator_id="hyper", country="SG"
    )
    assert [v.line for v in decision.violations] == [2]


def _aggregation_off(tmp_path: Path) -> RuleSet:
    src = Path(__file__).resolve().parents[2] / "ledger/policy/rulesets/ai-diffusion-2025.toml"
    path = tmp_path / "no-groups.toml"
    text = src.read_text()
    assert 'scope = "consignee_group"' in text
    path.write_text(text.replace('scope = "consignee_group"', 'scope = "consignee"'))
    return load_rule_set(str(path))


def test_group_aggregation_off_gives_each_affiliate_its_own_cap(tmp_path: Path) -> None:
    rule_set = _aggregation_off(tmp_path)
    decision = decide(
        [line("TH", 900 * H100, cons=A1), line("TH", 800 * H100, cons=A2)], rule_set=rule_set
    )
    assert [d.path for d in decision.lines] == ["lpp", "lpp"]
    assert decision.lines[1].draws[0].bucket == BucketKey(LPP, "consignee:a2", "2026")


def _with_g2g(tmp_path: Path) -> RuleSet:
    src = Path(__file__).resolve().parents[2] / "ledger/policy/rulesets/ai-diffusion-2025.toml"
    path = tmp_path / "g2g.toml"
    path.write_text(
        src.read_text()
        + '\n[[groups.g2g.members]]\ncountries = ["AE"]\n'
        'provenance = { source = "test", date = 2025-01-01, status = "reported" }\n'
    )
    return load_rule_set(str(path))


@pytest.mark.parametrize(("extra", "allowed"), [(0, True), (1, False)])
def test_g2g_doubles_the_allocation(tmp_path: Path, extra: int, allowed: bool) -> None:
    rule_set = _with_g2g(tmp_path)
    alloc = BucketKey(COUNTRY_ALLOCATION, "AE", "2025-2027", country="AE")
    balances = {**full(alloc, 1_000_000_000), **full(AE_LPP, LPP_CAP)}
    tpp = 580_000_000 + extra
    decision = decide(
        [line("AE", tpp, cons=AE_LAB, lic=licence("L-AE", "AE", 10**10))],
        balances,
        rule_set=rule_set,
    )
    assert decision.allowed is allowed
    if allowed:
        assert Draw(alloc, tpp, 1_580_000_000) in decision.lines[0].draws
    else:
        assert decision.violations[-1].constraint == "country_allocation"
        assert decision.violations[-1].cap == 1_580_000_000
        assert decision.violations[-1].used == 1_000_000_000


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (line("SG", 0), PolicyInputError),
        (line("SG", -5), PolicyInputError),
        (line("SG", H100, cons=consignee("my-lab", "MY")), PolicyInputError),
        (line("XK", H100, cons=consignee("xk-lab", "XK")), UnknownCountryError),
    ],
)
def test_malformed_lines_raise(bad: LineRequest, error: type[Exception]) -> None:
    with pytest.raises(error):
        decide([bad])


def test_country_tier() -> None:
    assert country_tier(DIFFUSION, "SG", AT) == 2
    assert country_tier(DIFFUSION, "KH", date(2026, 1, 31)) == 3
    assert country_tier(RESCINDED, "SG", AT) == 1


# needs() ------------------------------------------------------------------------------
def test_needs_names_every_bucket_a_line_might_use() -> None:
    lic = licence("L-AE", "AE")
    result = needs(DIFFUSION, [line("AE", H100, G42, AE_LAB, lic), line("SG", 1, HYPER)], AT)
    # A UVEU line can only take the UVEU step (AID-4), so it needs its footprint only.
    assert result.buckets == {
        BucketKey(COUNTRY_ALLOCATION, "AE", "2025-2027", country="AE"),
        BucketKey(LPP, "consignee:ae-lab", "2026"),
        BucketKey(NVEU, "g42:AE", "all", operator_id="g42", country="AE"),
        BucketKey(LICENSE, "L-AE", "all", country="AE"),
        BucketKey(FOOTPRINT, "g42:AE", "all", operator_id="g42", country="AE"),
        BucketKey(FOOTPRINT, "hyper:SG", "all", operator_id="hyper", country="SG"),
    }
    assert result.footprint_of == {"hyper"}


def test_needs_for_tier1_and_post_rescission() -> None:
    us_op = operator("op", "US")
    assert needs(DIFFUSION, [line("JP", 1, us_op)], AT).buckets == {footprint_bucket("op", "JP")}
    rescinded = needs(RESCINDED, [line("SG", 1, HYPER, lic=licence())], AT)
    assert rescinded.buckets == {footprint_bucket("hyper", "SG"), license_bucket(licence())}
    assert rescinded.footprint_of == frozenset()


def test_needs_groups_share_one_lpp_bucket() -> None:
    result = needs(DIFFUSION, [line("TH", 1, cons=A1), line("TH", 1, cons=A2)], AT)
    assert lpp_bucket(DIFFUSION, A1, AT.date()) == BucketKey(LPP, "group:g", "2026")
    assert BucketKey(LPP, "group:g", "2026") in result.buckets
    assert allocation_bucket(DIFFUSION, "TH") in result.buckets
