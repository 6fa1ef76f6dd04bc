"""Job: threshold alerts when a bucket's use crosses 80% and 95% of its cap.

"Use" is committed + unexpired held, as headroom shows it. Caps are the
policy's cap at the run's instant (`ledger.policy.caps.bucket_cap`, the one
balances show too), so an NVEU cap that steps up at a quarter start moves the
percentages. A zero cap (e.g. a closed allocation window: nothing grantable)
has no percentage and never alerts. Footprint buckets have no cap.

Once per crossing: an alert row is written when use goes from below to at or
above a threshold; it is `cleared` when use falls back below (a release,
expiry, reversal or a higher cap), which re-arms it. The unique (bucket,
threshold, crossing) row means two runners can never record one crossing
twice. Each alert gets one delivery row per configured webhook.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.context import JobContext, JobResult
from jobs.webhooks import deliver_pending
from ledger.policy.caps import bucket_cap
from ledger.policy.types import FOOTPRINT
from ledger.store.job_models import Alert, AlertDelivery
from ledger.store.models import Bucket, License
from ledger.store.txn import bucket_key_of, effective_balances, with_expired

THRESHOLDS = (80, 95)
ALERT = Alert.__table__  # type: ignore[attr-defined]
DELIVERY = AlertDelivery.__table__  # type: ignore[attr-defined]
BUCKET = Bucket.__table__  # type: ignore[attr-defined]
LICENSE_T = License.__table__  # type: ignore[attr-defined]


def webhook_urls(raw: str | None) -> list[str]:
    return [u.strip() for u in (raw or "").split(",") if u.strip()]


def check_thresholds(ctx: JobContext) -> JobResult:
    now = ctx.now()
    urls = webhook_urls(ctx.settings.alert_webhooks)
    raised = cleared = checked = 0
    # Read, in one snapshot and without the write lock: every capped bucket's use,
    # and which (bucket, threshold) has an open (uncleared) crossing.
    with Session(ctx.engine) as session:
        rows = session.execute(with_expired(
            sa.select(BUCKET).where(BUCKET.c.kind != FOOTPRINT)  # uncapped by definition
            .order_by(BUCKET.c.kind, BUCKET.c.key, BUCKET.c.period), now)
        ).all()
        balances = effective_balances(rows)
        licence_caps = {r.id: r.tpp for r in session.execute(
            sa.select(LICENSE_T.c.id, LICENSE_T.c.tpp))}
        open_now = _open_crossings(session)
    changes = []
    for row in rows:
        key = bucket_key_of(row)
        cap = bucket_cap(ctx.ledger.rule_set, key, now, licence_caps)
        if not cap:
            continue  # no cap, or a zero cap (nothing grantable now): no percentage
        checked += 1
        used = balances[key].used
        for threshold in THRESHOLDS:
            above = used * 100 >= cap * threshold
            if above != ((row.kind, row.key, row.period, threshold) in open_now):
                changes.append((row, threshold, used, cap))
    if changes:
        # Write, under the write lock (BEGIN IMMEDIATE on SQLite): `_update` reads the
        # latest crossing again there, so a concurrent runner's record is respected.
        with Session(ctx.write_engine) as session, session.begin():
            for row, threshold, used, cap in changes:
                delta = _update(session, row, threshold, used, cap, now, urls)
                raised += delta == 1
                cleared += delta == -1
    delivery = deliver_pending(ctx.engine, now, ctx.settings.alert_max_attempts,
                               backoff=float(ctx.options.get("backoff", 0.5)))
    return JobResult.ok(buckets=checked, raised=raised, cleared=cleared, **delivery)


def _open_crossings(session: Session) -> set[tuple[str, str, str, int]]:
    """(kind, key, period, threshold) whose latest crossing is not cleared."""
    ident = (ALERT.c.bucket_kind, ALERT.c.bucket_key, ALERT.c.bucket_period, ALERT.c.threshold)
    latest = (sa.select(*ident, sa.func.max(ALERT.c.crossing).label("crossing"))
              .group_by(*ident).subquery())
    rows = session.execute(
        sa.select(*ident).join(latest, sa.and_(
            ALERT.c.bucket_kind == latest.c.bucket_kind, ALERT.c.bucket_key == latest.c.bucket_key,
            ALERT.c.bucket_period == latest.c.bucket_period,
            ALERT.c.threshold == latest.c.threshold, ALERT.c.crossing == latest.c.crossing))
        .where(ALERT.c.cleared_at.is_(None)))
    return {(r.bucket_kind, r.bucket_key, r.bucket_period, r.threshold) for r in rows}


def _update(session: Session, row: Any, threshold: int, used: int, cap: int, now: Any,
            urls: list[str]) -> int:
    """+1 when a crossing is recorded, -1 when one clears, 0 otherwise."""
    ident = (ALERT.c.bucket_kind == row.kind, ALERT.c.bucket_key == row.key,
             ALERT.c.bucket_period == row.period, ALERT.c.threshold == threshold)
    latest = session.execute(
        sa.select(ALERT.c.id, ALERT.c.crossing, ALERT.c.cleared_at).where(*ident)
        .order_by(ALERT.c.crossing.desc()).limit(1)
    ).first()
    is_open = latest is not None and latest.cleared_at is None
    above = used * 100 >= cap * threshold  # exact integer comparison, no float percentages
    if above and not is_open:
        crossing = 1 if latest is None else latest.crossing + 1
        alert_id = session.execute(sa.insert(ALERT).values(
            bucket_kind=row.kind, bucket_key=row.key, bucket_period=row.period,
            threshold=threshold, crossing=crossing, used=used, cap=cap, crossed_at=now,
        ).returning(ALERT.c.id)).scalar_one()
        if urls:
            session.execute(sa.insert(DELIVERY), [
                {"alert_id": alert_id, "url": u, "state": "pending", "attempts": 0}
                for u in urls])
        return 1
    if not above and is_open:
        assert latest is not None
        session.execute(sa.update(ALERT).where(ALERT.c.id == latest.id).values(cleared_at=now))
        return -1
    return 0
