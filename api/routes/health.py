"""Liveness and readiness (no auth on either)."""

from __future__ import annotations

import anyio.to_thread
import sqlalchemy as sa
from litestar import get

from api.schemas import StatusOut
from api.services import ServicesDep
from api.wire import problem_responses
from ledger.errors import Unavailable

DB_CHECK_TIMEOUT_S = 5.0


@get("/health", tags=["health"], sync_to_thread=False)
def health() -> StatusOut:
    """Liveness: answers without touching the database or checking auth."""
    return StatusOut(status="ok")


@get("/ready", tags=["health"], responses={503: problem_responses()[503]})
async def ready(services: ServicesDep) -> StatusOut:
    """Readiness: 200 when the database answers a query, else 503 with Retry-After."""

    def ping() -> None:
        with services.ledger.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    try:
        with anyio.fail_after(DB_CHECK_TIMEOUT_S):
            await anyio.to_thread.run_sync(ping, abandon_on_cancel=True)
    except (sa.exc.SQLAlchemyError, TimeoutError) as exc:
        raise Unavailable(f"database check failed: {type(exc).__name__}") from exc
    return StatusOut(status="ready")
