"""Headroom: which buckets apply to a query (country, operator?, consignee?, licences) and
their caps. It follows the same walk over the steps as the decision
(`steps.reachable`), so it lists exactly the buckets a line of that query could
draw on; facts the query lacks (the chip) count as "may hold".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from ledger.policy.buckets import footprint_bucket, license_bucket
from ledger.policy.conditions import Facts, is_uveu
from ledger.policy.model import RuleSet, utc_date
from ledger.policy.quotas import applicable
from ledger.policy.steps import licence_unusable_because, reachable
from ledger.policy.types import (
    COUNTRY_ALLOCATION,
    LICENSE,
    LPP,
    NVEU,
    UVEU,
    ConsigneeInfo,
    HeadroomBucket,
    LicenseInfo,
    Needs,
    OperatorInfo,
)
from ledger.policy.uveu import uveu_headroom

# Display order: the country's quota, the consignee's, the operator's, licences, ratios.
_ORDER = {COUNTRY_ALLOCATION: 0, LPP: 1, NVEU: 2, LICENSE: 4, UVEU: 5}


def headroom_buckets(
    rule_set: RuleSet,
    country: str,
    operator: OperatorInfo | None,
    consignee: ConsigneeInfo | None,
    licenses: Sequence[LicenseInfo],
    at: datetime,
    footprint: Mapping[str, int] | None = None,
) -> list[HeadroomBucket]:
    """Every bucket that applies to a headroom query for `country` at `at`, unused ones included.

    Listed: the quotas of every step a line of this query could reach (e.g. the
    country allocation and the consignee's LPP bucket for the year, when a
    consignee is given; the NVEU bucket when the operator is an NVEU for
    `country`); each licence usable on the date for `country` (and for the
    consignee, if both name one) when a licence step is reachable; for a UVEU
    operator, one "uveu" entry per ratio a shipment to `country` can break, keyed
    by the share ("tier1", the home country, or `country` itself), whose bucket
    is the operator's footprint bucket for `country` and whose cap is the largest
    committed + held that bucket may reach under that ratio (so available = cap
    - committed - held). `footprint` is the operator's recorded committed + held
    per country (see `footprint_from_balances`); None counts only its declared
    footprint. A query no step can allow (e.g. Tier 3 under AID-3) lists nothing.
    """
    on = utc_date(at)
    facts = Facts(country, on, operator, consignee, chip=None, chip_known=False)
    out: dict[tuple[str, str, str], HeadroomBucket] = {}
    for step, _match in reachable(rule_set, facts):
        if step.outcome == "prohibited":
            continue
        for name in step.quotas:
            for qb in applicable(rule_set, name, facts):
                b = qb.bucket
                out.setdefault((b.kind, b.key, b.period), HeadroomBucket(b, b.kind, b.key, qb.cap))
        if step.outcome == "license_required":
            for licence in licenses:
                consignee_id = None if consignee is None else consignee.id
                if licence_unusable_because(licence, country, consignee_id, on) is None:
                    b = license_bucket(licence)
                    out.setdefault((b.kind, b.key, b.period),
                                   HeadroomBucket(b, LICENSE, licence.id, licence.tpp))
        if step.ratios == UVEU and operator is not None:
            bucket = footprint_bucket(operator.id, country)
            for share, cap in uveu_headroom(rule_set, operator, country, footprint or {}, on):
                out.setdefault((UVEU, share, ""), HeadroomBucket(bucket, UVEU, share, cap))
    return sorted(out.values(), key=lambda e: _ORDER.get(e.kind, 3))


def headroom_needs(
    rule_set: RuleSet,
    country: str,
    operator: OperatorInfo | None,
    consignee: ConsigneeInfo | None,
    licenses: Sequence[LicenseInfo],
    at: datetime,
) -> Needs:
    """The buckets whose balances a headroom query shows, and the UVEU whose footprint it needs.

    Load these (and every footprint bucket of `footprint_of`), then call
    `headroom_buckets` with `footprint=footprint_from_balances(...)`.
    """
    listed = headroom_buckets(rule_set, country, operator, consignee, licenses, at)
    uveu = (
        frozenset({operator.id})
        if operator is not None and is_uveu(rule_set, operator, utc_date(at))
        else frozenset()
    )
    return Needs(frozenset(entry.bucket for entry in listed), uveu)
