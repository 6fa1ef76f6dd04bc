"""Delivering alerts to webhooks, with retries and recorded state.

Each (alert, url) delivery is `pending` until a 2xx answer (`delivered`) or
until it has used its attempts (`failed`). A run tries each pending delivery
a few times with exponential backoff; what is still pending is tried again
by the next run, so a receiver that is down for a while still gets every
alert. Receivers may see one alert more than once (a timeout after the
receiver processed it): the `Idempotency-Key` header lets them drop repeats.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ledger.chain import format_time
from ledger.store.engine import writer
from ledger.store.job_models import Alert, AlertDelivery

ALERT = Alert.__table__  # type: ignore[attr-defined]
DELIVERY = AlertDelivery.__table__  # type: ignore[attr-defined]
TRIES_PER_RUN = 3
TIMEOUT_SECONDS = 5.0


def alert_payload(alert: Any) -> dict[str, Any]:
    """The JSON body POSTed for one alert (`alert` is a delivery row joined to its alert)."""
    return {
        "alert_id": alert.alert_id,
        "bucket": {"kind": alert.bucket_kind, "key": alert.bucket_key,
                   "period": alert.bucket_period},
        "threshold_percent": alert.threshold,
        "crossing": alert.crossing,
        "used": alert.used,
        "cap": alert.cap,
        "crossed_at": format_time(alert.crossed_at),
    }


def deliver_pending(engine: sa.Engine, now: Any, max_attempts: int,
                    tries_per_run: int = TRIES_PER_RUN, backoff: float = 0.5) -> dict[str, int]:
    """Tries every pending delivery; returns counts of delivered / failed / still pending."""
    with Session(engine) as session:
        pending = session.execute(
            sa.select(DELIVERY.c.id, DELIVERY.c.alert_id, DELIVERY.c.url, DELIVERY.c.attempts,
                      ALERT.c.bucket_kind, ALERT.c.bucket_key, ALERT.c.bucket_period,
                      ALERT.c.threshold, ALERT.c.crossing, ALERT.c.used, ALERT.c.cap,
                      ALERT.c.crossed_at).join(ALERT, ALERT.c.id == DELIVERY.c.alert_id)
            .where(DELIVERY.c.state == "pending").order_by(DELIVERY.c.id)
        ).all()
    counts = {"delivered": 0, "delivery_failed": 0, "delivery_pending": 0, "attempts": 0}
    with httpx.Client(timeout=TIMEOUT_SECONDS) as client:
        for row in pending:
            attempts, error, ok = row.attempts, None, False
            for try_no in range(tries_per_run):
                if attempts >= max_attempts:
                    break
                if try_no:
                    time.sleep(backoff * 2 ** (try_no - 1))
                attempts += 1
                counts["attempts"] += 1
                try:
                    answer = client.post(row.url, json=alert_payload(row),
                                         headers={"Idempotency-Key": f"alert-{row.alert_id}"})
                    ok = answer.is_success
                    error = None if ok else f"HTTP {answer.status_code}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:500]
                if ok:
                    break
            state = "delivered" if ok else ("failed" if attempts >= max_attempts else "pending")
            counts[{"delivered": "delivered", "failed": "delivery_failed",
                    "pending": "delivery_pending"}[state]] += 1
            with Session(writer(engine)) as session, session.begin():
                session.execute(sa.update(DELIVERY).where(DELIVERY.c.id == row.id).values(
                    state=state, attempts=attempts, last_error=error, last_attempt_at=now,
                    delivered_at=now if ok else None))
    return counts
