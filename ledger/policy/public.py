"""A rule set as public data (GET /v1/policy) and the list of what in it is not firm.

Every group, entity, measure, step, quota, ratio and chip is shown with its
provenance (source, date, status, note), so a reader can tell a firm number
from a reported one without opening the file.
"""

from __future__ import annotations

from typing import Any

from ledger.policy.schema import ChipSpec, Dated, Provenance, RuleSetFile
from ledger.policy.schema_rules import Condition, QuotaSpec, StepSpec


def _prov(p: Provenance | None) -> dict[str, str] | None:
    if p is None:
        return None
    return {"source": p.source, "date": p.date.isoformat(), "status": p.status, "note": p.note}


def _dates(d: Dated) -> dict[str, str | None]:
    return {
        "from": None if d.from_ is None else d.from_.isoformat(),
        "until": None if d.until is None else d.until.isoformat(),
    }


def _condition(c: Condition) -> dict[str, Any]:
    data = c.model_dump(mode="json", exclude_defaults=True)
    if "parties" not in data and (c.party_hq_in or c.parties_hq_all_in):
        data["parties"] = list(c.parties)
    return data


def _step(s: StepSpec) -> dict[str, Any]:
    return {
        "id": s.id, "rule": s.rule, "title": s.title, "when": _condition(s.when),
        "any_of": [_condition(c) for c in s.any_of], "outcome": s.outcome, "path": s.path,
        "quotas": list(s.quotas), "ratios": s.ratios, "on_fail": s.on_fail,
        "constraint": s.denial_constraint if s.outcome == "prohibited" else None,
        "reason": s.reason,
    }


def _quota(name: str, q: QuotaSpec) -> dict[str, Any]:
    return {
        "name": name, "kind": q.kind, "rule": q.rule, "title": q.title, "scope": q.scope,
        "entity": q.entity, "period": q.period,
        "window": None if q.window is None
        else {"from": q.window.from_.isoformat(), "to": q.window.to.isoformat()},
        "unit": q.unit if isinstance(q.unit, str) else {"equivalents_of": q.unit.equivalents_of},
        "cap": q.cap,
        "schedule": [{"from": s.label, "cap": s.cap} for s in q.schedule],
        "multipliers": dict(q.multipliers),
        "applies_when": _condition(q.applies_when),
        "sub_quotas": [{"entity": s.entity, "cap": s.cap, "provenance": _prov(s.provenance)}
                       for s in q.sub_quotas],
        "provenance": _prov(q.provenance),
    }


def _chip(c: ChipSpec) -> dict[str, Any]:
    return {
        "id": c.id, "name": c.name, "tpp": c.tpp,
        "die_area_mm2": None if c.die_area_mm2 is None else str(c.die_area_mm2),
        "dram_bandwidth_gbs": c.dram_bandwidth_gbs,
        "provenance": _prov(c.provenance),
        "bandwidth_provenance": _prov(c.bandwidth_provenance),
    }


def public_dict(spec: RuleSetFile, chips: tuple[ChipSpec, ...]) -> dict[str, Any]:
    uveu = spec.uveu
    return {
        "name": spec.name,
        "version": spec.version,
        "effective_from": spec.effective_from.isoformat(),
        "effective_to": None if spec.effective_to is None else spec.effective_to.isoformat(),
        "description": spec.description,
        "tiers": spec.tiers.model_dump(mode="json"),
        "groups": {
            name: {
                "title": g.title, "rule": g.rule, "complement_of": list(g.complement_of),
                "provenance": _prov(g.provenance),
                "members": [{"countries": list(m.countries), **_dates(m),
                             "provenance": _prov(m.provenance)} for m in g.members],
            }
            for name, g in spec.groups.items()
        },
        "entities": {
            name: {"title": e.title, "rule": e.rule, "operators": list(e.operators),
                   "consignees": list(e.consignees), "countries": list(e.countries),
                   **_dates(e), "provenance": _prov(e.provenance)}
            for name, e in spec.entities.items()
        },
        "measures": {
            name: {"title": m.title, "rule": m.rule,
                   "spans": [{"state": s.state, **_dates(s), "provenance": _prov(s.provenance)}
                             for s in m.spans]}
            for name, m in spec.measures.items()
        },
        "steps": [_step(s) for s in spec.steps],
        "quotas": [_quota(name, q) for name, q in spec.quotas.items()],
        "uveu": None if uveu is None else {
            "rule": uveu.rule, "headquarters_in": uveu.headquarters_in,
            "tier1_min_pct": uveu.tier1_min_pct, "tier2_max_pct": uveu.tier2_max_pct,
            "home_min_pct": dict(uveu.home_min_pct), "provenance": _prov(uveu.provenance),
        },
        "chips": [_chip(c) for c in chips],
        "not_firm": sureness(spec, chips),
    }


def sureness(spec: RuleSetFile, chips: tuple[ChipSpec, ...]) -> dict[str, str]:
    """Dotted path -> status of every number or list whose status is not firm."""
    out: dict[str, str] = {}

    def note(path: str, p: Provenance | None) -> None:
        if p is not None and p.status != "firm":
            out[path] = p.status

    for name, g in spec.groups.items():
        note(f"groups.{name}", g.provenance)
        for m in g.members:
            for code in m.countries:
                note(f"groups.{name}.{code}", m.provenance)
    for name, e in spec.entities.items():
        note(f"entities.{name}", e.provenance)
    for name, measure in spec.measures.items():
        for s in measure.spans:
            note(f"measures.{name}.{s.state}.{'' if s.from_ is None else s.from_}", s.provenance)
    for name, q in spec.quotas.items():
        if q.cap is not None:
            note(f"quotas.{name}.cap", q.provenance)
        for step in q.schedule:
            note(f"quotas.{name}.schedule.{step.label}", q.provenance)
        for sub in q.sub_quotas:
            note(f"quotas.{name}.sub_quotas.{sub.entity}", sub.provenance)
    if spec.uveu is not None:
        note("uveu", spec.uveu.provenance)
    for c in chips:
        note(f"chips.{c.id}.tpp", c.provenance)
        note(f"chips.{c.id}.dram_bandwidth_gbs", c.bandwidth_provenance)
    return out
