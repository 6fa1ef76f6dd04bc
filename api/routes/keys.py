"""API keys: list them, revoke one (admin). Keys are created with `ledger keys create`."""

from __future__ import annotations

import logging
from typing import Annotated

import anyio.to_thread
import redis
from litestar import Request, delete, get
from litestar.params import FromPath, QueryParameter
from msgspec import Struct

from api.auth import ADMIN, allow, principal_of
from api.schemas import to_struct
from api.services import ServicesDep
from api.wire import problem_responses
from ledger.keys import MAX_PAGE, announce_revocation, list_keys, revoke_key

log = logging.getLogger(__name__)


class KeyOut(Struct):
    id: str
    role: str  # admin | vendor | operator | auditor
    operator_id: str | None
    name: str
    created_at: str
    revoked_at: str | None
    expires_at: str | None


class KeysOut(Struct):
    items: list[KeyOut]
    next_cursor: str | None


@get("/v1/keys", guards=[allow(ADMIN)], tags=["keys"], responses=problem_responses(403, 422))
async def keys(
    services: ServicesDep,
    cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 100,
) -> KeysOut:
    """Every API key (never the key itself), oldest first. Pass `next_cursor` back as
    `cursor` for the next page; null means the end."""
    items, next_cursor = await anyio.to_thread.run_sync(
        lambda: list_keys(services.ledger.engine, cursor, limit))
    return to_struct({"items": items, "next_cursor": next_cursor}, KeysOut)


@delete("/v1/keys/{key_id:str}", guards=[allow(ADMIN)], tags=["keys"], status_code=204,
        responses=problem_responses(403, 404, 422))
async def revoke(request: Request, services: ServicesDep, key_id: FromPath[str]) -> None:
    """Revokes a key: every process refuses it (401) once this answers. Revoking a
    revoked key changes nothing."""
    actor = principal_of(request).key_id
    await anyio.to_thread.run_sync(
        lambda: revoke_key(services.ledger.engine, key_id, services.ledger.clock.now(), actor))
    services.principals.revoked(key_id)
    redis_url = services.settings.redis_url
    if redis_url:  # announced again on a repeat, in case the first notice was lost
        try:
            await anyio.to_thread.run_sync(announce_revocation, redis_url, key_id)
        except (redis.RedisError, OSError) as exc:
            # Committed all the same: other processes refuse it within their short TTL.
            log.warning("revocation of %s not announced (%s)", key_id, exc)
