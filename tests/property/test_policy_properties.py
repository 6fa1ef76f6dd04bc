"""Property tests that try to break the engine's invariants with random requests.

Invariant: for every allowed line, on every capped bucket it draws on, stored
use + the draws of all allowed lines up to it <= cap. Also: every number is an
int; denied lines draw nothing; every violation is genuine.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.policy import (
    bucket_cap,
    evaluate,
    footprint_from_balances,
    headroom_buckets,
    load_rule_set,
    needs,
)
from ledger.policy.types import (
    FOOTPRINT,
    Balance,
    BucketKey,
    ConsigneeInfo,
    LicenseInfo,
    LineRequest,
    OperatorInfo,
)

RULE_SETS = [load_rule_set("ai-diffusion-2025"), load_rule_set("post-rescission-2025")]
COUNTRIES = ["SG", "AE", "MY", "TH", "US", "DE", "JP", "CN", "KH"]
H100 = 15_832

OPERATORS = [
    OperatorInfo("plain", "SG"),
    OperatorInfo("g42", "AE", "NVEU", "AE"),
    OperatorInfo("hyper", "US", "UVEU", None, {"US": 2_000_000_000}),
    OperatorInfo("eu", "GB", "UVEU"),
    OperatorInfo("cn-op", "CN"),
]
CONSIGNEES = {
    code: [
        ConsigneeInfo(f"{code}-1", code, None, "grp" if code in ("SG", "TH") else None),
        ConsigneeInfo(f"{code}-2", code, None, "grp" if code == "SG" else None),
    ]
    for code in COUNTRIES
}

tpps = st.one_of(
    st.integers(1, 3 * H100),
    st.integers(1, 30_000_000),
    st.integers(1, 2_000_000_000),
    st.sampled_from([26_900_000, 26_898_568, 75_268_817, 790_000_000, 1_583_200_000]),
)
dates = st.dates(date(2025, 1, 1), date(2028, 3, 31))


@st.composite
def licences(draw: st.DrawFn, country: str, consignee_id: str) -> LicenseInfo | None:
    kind = draw(st.sampled_from(["none", "good", "good", "random"]))
    if kind == "none":
        return None
    if kind == "good":  # usable on every generated date, so the licence path is exercised
        quantity = draw(st.one_of(st.integers(1, 10**9), st.just(10**10)))
        return LicenseInfo(
            f"G-{country}", country, None, quantity, date(2025, 1, 1), date(2028, 12, 31)
        )
    start = draw(dates)
    return LicenseInfo(
        id=draw(st.sampled_from(["L1", "L2", "L3"])) + country,
        country=draw(st.sampled_from([country, country, "SG"])),
        consignee_id=draw(st.sampled_from([None, consignee_id, "someone-else"])),
        tpp=draw(tpps),
        valid_from=start,
        valid_to=draw(st.dates(start, date(2028, 12, 31))),
    )


@st.composite
def request_lines(draw: st.DrawFn) -> LineRequest:
    country = draw(st.sampled_from(COUNTRIES))
    cons = draw(st.sampled_from(CONSIGNEES[country]))
    return LineRequest(
        destination_country=country,
        operator=draw(st.sampled_from([OPERATORS[0], OPERATORS[0], *OPERATORS])),
        consignee=cons,
        tpp=draw(tpps),
        license=draw(licences(country, cons.id)),
    )


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[int, list[LineRequest], datetime, dict[BucketKey, Balance]]:
    rule_index = draw(st.integers(0, len(RULE_SETS) - 1))
    lines = draw(st.lists(request_lines(), min_size=1, max_size=6))
    day = draw(dates)
    at = datetime(day.year, day.month, day.day, draw(st.integers(0, 23)), tzinfo=UTC)
    wanted = sorted(needs(RULE_SETS[rule_index], lines, at).buckets)
    for op in ("hyper", "eu"):
        wanted += [
            BucketKey(FOOTPRINT, f"{op}:{c}", "all", operator_id=op, country=c) for c in COUNTRIES
        ]
    balances: dict[BucketKey, Balance] = {}
    for bucket in wanted:
        if draw(st.booleans()):
            balances[bucket] = Balance(draw(tpps), draw(st.sampled_from([0, 0, 1, H100])))
    return rule_index, lines, at, balances


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_no_allowed_line_overfills_a_capped_bucket(
    scenario: tuple[int, list[LineRequest], datetime, dict[BucketKey, Balance]],
) -> None:
    rule_index, lines, at, balances = scenario
    rule_set = RULE_SETS[rule_index]
    decision = evaluate(rule_set, lines, at, balances)
    assert len(decision.lines) == len(lines)
    drawn: dict[BucketKey, int] = {}
    for index, line_decision in enumerate(decision.lines):
        assert line_decision.line == index
        assert line_decision.tpp == lines[index].tpp
        if not line_decision.allowed:
            assert line_decision.draws == ()
            assert line_decision.violations
            continue
        assert line_decision.violations == ()
        footprints = [d for d in line_decision.draws if d.bucket.kind == FOOTPRINT]
        assert len(footprints) == 1 and footprints[0].cap is None
        for d in line_decision.draws:
            assert _is_int(d.tpp) and d.tpp == lines[index].tpp
            drawn[d.bucket] = drawn.get(d.bucket, 0) + d.tpp
            if d.cap is not None:
                assert _is_int(d.cap)
                stored = balances.get(d.bucket, Balance()).used
                assert stored + drawn[d.bucket] <= d.cap, (d, stored, drawn[d.bucket])
    # Every reported violation is genuine.
    for v in decision.violations:
        assert all(_is_int(n) for n in (v.line, v.cap, v.used, v.requested))
        assert v.rule and v.reason, v  # every denial explains itself
        if v.constraint in ("tier3", "license_required"):
            assert (v.cap, v.used) == (0, 0), v  # a rule, never reported as a cap
        if v.constraint == "uveu":
            assert v.used > v.cap
        elif v.constraint in ("lpp", "nveu", "country_allocation") or (
            v.constraint == "license" and v.cap > 0
        ):
            assert v.used + v.requested > v.cap


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_allowed_uveu_lines_keep_every_ratio(
    scenario: tuple[int, list[LineRequest], datetime, dict[BucketKey, Balance]],
) -> None:
    rule_index, lines, at, balances = scenario
    rule_set = RULE_SETS[rule_index]
    if rule_set.uveu is None:
        return
    decision = evaluate(rule_set, lines, at, balances)
    added: dict[tuple[str, str], int] = {}
    for line, line_decision in zip(lines, decision.lines, strict=True):
        if not line_decision.allowed:
            continue
        op = line.operator
        key = (op.id, line.destination_country)
        added[key] = added.get(key, 0) + line.tpp
        if op.veu_type != "UVEU":
            continue
        foot = footprint_from_balances(balances, op.id)
        for code, tpp in op.footprint.items():
            foot[code] = foot.get(code, 0) + tpp
        for (op_id, code), tpp in added.items():
            if op_id == op.id:
                foot[code] = foot.get(code, 0) + tpp
        total = sum(foot.values())
        tiers = {code: rule_set.tier(code, at) for code in foot}
        assert all(100 * v <= 7 * total for c, v in foot.items() if tiers[c] == 2)
        assert 100 * sum(v for c, v in foot.items() if tiers[c] == 1) >= 75 * total
        if op.hq_country == "US":
            assert 100 * foot.get("US", 0) >= 50 * total


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_evaluate_is_deterministic_and_reads_only_needed_buckets(
    scenario: tuple[int, list[LineRequest], datetime, dict[BucketKey, Balance]],
) -> None:
    rule_index, lines, at, balances = scenario
    rule_set = RULE_SETS[rule_index]
    first = evaluate(rule_set, lines, at, balances)
    assert evaluate(rule_set, lines, at, dict(balances)) == first
    wanted = needs(rule_set, lines, at)
    for line_decision in first.lines:
        for d in line_decision.draws:
            assert d.bucket in wanted.buckets


# One model: the decision, needs, headroom and bucket_cap agree --------------------------------
ALL_SETS = [*RULE_SETS, load_rule_set("us-controls-2026")]
CHIPS = [None, "H100-SXM", "H200-SXM", "H20", "B200", "GB200"]
PARTY_HQ = [None, "US", "SG", "IN", "CN", "KH", "GB"]
CONSISTENCY_COUNTRIES = [*COUNTRIES, "SA", "IN", "IL", "DE"]


@st.composite
def single_line_queries(draw: st.DrawFn) -> tuple[int, LineRequest, datetime,
                                                   dict[BucketKey, Balance]]:
    """A rule set, one fully described line (parties with HQ and parents, chip, licence),
    a date (around every dated change) and stored balances of its buckets."""
    rule_index = draw(st.integers(0, len(ALL_SETS) - 1))
    country = draw(st.sampled_from(CONSISTENCY_COUNTRIES))
    base = draw(st.sampled_from(OPERATORS))
    operator = OperatorInfo(base.id, base.hq_country, base.veu_type, base.veu_country,
                            base.footprint, draw(st.sampled_from(PARTY_HQ)))
    consignee = ConsigneeInfo(f"{country}-1", country, None,
                              draw(st.sampled_from([None, "grp"])),
                              draw(st.sampled_from(PARTY_HQ)), draw(st.sampled_from(PARTY_HQ)))
    chip = draw(st.sampled_from(CHIPS))
    rule_set = ALL_SETS[rule_index]
    per_chip = rule_set.chip_tpp(chip) if chip else 1
    tpp = draw(st.integers(1, 2000)) * (per_chip or 1) if chip else draw(tpps)
    day = draw(st.one_of(dates, st.sampled_from(
        [date(2026, 1, 31), date(2026, 2, 1), date(2026, 7, 9), date(2026, 7, 10),
         date(2027, 12, 31), date(2028, 1, 1)])))
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    request = LineRequest(country, operator, consignee, tpp, draw(licences(country, consignee.id)),
                          chip)
    balances = {
        bucket: Balance(draw(tpps), 0)
        for bucket in sorted(needs(rule_set, [request], at).buckets)
        if draw(st.booleans())
    }
    return rule_index, request, at, balances


@settings(max_examples=500, deadline=None)
@given(single_line_queries())
def test_decision_needs_headroom_and_bucket_cap_agree(
    query: tuple[int, LineRequest, datetime, dict[BucketKey, Balance]],
) -> None:
    """The same caps and the same applicable buckets, whichever question is asked.

    - every bucket a decision draws on is in `needs`, and its cap is `bucket_cap`'s;
    - every capped bucket a decision draws on (or names in a violation) is listed by
      headroom for the same parties and licence, with the same cap;
    - every bucket headroom lists is one `needs` would load for such a line;
    - every bucket cap headroom shows is `bucket_cap`'s (UVEU shares aside: their caps are
      ratios over the footprint, not a stored cap).
    """
    rule_index, request, at, balances = query
    rule_set = ALL_SETS[rule_index]
    licence_tpp = {} if request.license is None else {request.license.id: request.license.tpp}
    [decided] = evaluate(rule_set, [request], at, balances).lines
    wanted = needs(rule_set, [request], at).buckets
    listed = headroom_buckets(rule_set, request.destination_country, request.operator,
                              request.consignee,
                              [] if request.license is None else [request.license], at)
    shown = {e.bucket: e.cap for e in listed if e.kind != "uveu"}
    for entry in listed:
        if entry.kind == "uveu":
            continue
        assert entry.bucket in wanted, entry
        assert entry.cap == bucket_cap(rule_set, entry.bucket, at, licence_tpp), entry
    for d in decided.draws:
        assert d.bucket in wanted
        assert d.cap == bucket_cap(rule_set, d.bucket, at, licence_tpp), d
        if d.cap is not None:
            assert shown.get(d.bucket) == d.cap, (d, listed)
    for v in decided.violations:
        if v.constraint in ("lpp", "nveu", "country_allocation"):
            [bucket] = [b for b in wanted if b.kind == v.constraint and b.key == v.key]
            assert bucket_cap(rule_set, bucket, at, licence_tpp) == v.cap
            assert shown.get(bucket) == v.cap, (v, listed)
