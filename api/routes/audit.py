"""Audit: walk the hash chain and say whether anybody rewrote history."""

from __future__ import annotations

import anyio.to_thread
from litestar import get

from api.auth import ADMIN, AUDITOR, allow
from api.schemas import VerifyOut
from api.services import ServicesDep
from api.wire import problem_responses
from ledger.audit import verify_chain


@get("/v1/audit/verify", guards=[allow(ADMIN, AUDITOR)], tags=["audit"],
     responses=problem_responses(403))
async def verify(services: ServicesDep) -> VerifyOut:
    """Checks every entry: seq gapless, each linked to the previous hash, each hash right.

    Streams the whole chain (constant memory): an auditor's question, not a hot path.
    """
    report = await anyio.to_thread.run_sync(verify_chain, services.ledger.engine)
    return VerifyOut(ok=report.ok, entries=report.entries, head=report.head,
                     first_bad_seq=report.first_bad_seq, reason=report.reason)
