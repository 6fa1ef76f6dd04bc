"""Bearer API keys, roles and scopes.

Roles, as the API contract fixes them:
- admin: everything;
- vendor: reserve, commit, release and read its own reservations; read headroom;
- operator: read headroom and history of its own operator id only;
- auditor: read everything, write nothing.
A missing or unknown key is 401; a known key outside its role or scope is 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.problems import Throttled
from api.services import Services
from ledger.keys import Principal, authenticate, hash_key

ADMIN, VENDOR, OPERATOR, AUDITOR = "admin", "vendor", "operator", "auditor"
EVERYONE = (ADMIN, VENDOR, OPERATOR, AUDITOR)
# "/" and "/dashboard/": the dashboard page and its files (it signs in with a key itself).
PUBLIC_PATHS = ["^/health$", "^/ready$", "^/schema", "^/$", "^/dashboard/"]

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


class KeyAuthMiddleware(AbstractAuthenticationMiddleware):
    """Authenticates the bearer key, then counts the request against the key's throttle.

    Throttling sits here because its unit is the authenticated key.
    """

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        services: Services = connection.app.state.services
        header = _authorization(connection.scope)
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise NotAuthorizedException("send Authorization: Bearer <API key>")
        digest = hash_key(key)
        principal = services.principals.get(digest)
        if principal is None:
            generation = services.principals.generation()
            principal = await anyio.to_thread.run_sync(authenticate, services.ledger.engine, key)
            if principal is None:
                raise NotAuthorizedException("unknown or revoked API key")
            services.principals.put(digest, principal, generation)
        if principal.expires_at is not None and principal.expired(services.ledger.clock.now()):
            raise NotAuthorizedException("this API key has expired")
        retry_after = await services.throttle.check(principal.key_id)
        if retry_after is not None:
            raise Throttled(retry_after)
        return AuthenticationResult(user=principal, auth=principal.key_id)


def _authorization(scope: Any) -> str:
    """The Authorization header, read from the ASGI scope: building the request's
    Headers object costs more than the rest of a cached key's check."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":  # ASGI header names are lower case
            return str(value.decode("latin-1"))
    return ""


def with_article(word: str) -> str:
    """`an admin`, `an operator`, `a vendor`."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise NotAuthorizedException("send Authorization: Bearer <API key>")
    return user


def allow(*roles: str) -> Guard:
    """A route guard admitting only keys with one of `roles`."""

    # Async on purpose: Litestar runs a sync guard in a worker thread, a round trip
    # through the thread pool on every request for what is a set lookup.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        require_role(principal_of(connection), roles)

    return guard


def require_role(principal: Principal, roles: tuple[str, ...]) -> None:
    """What `allow(*roles)` checks, for a hot handler to call itself: Litestar copies
    the route handler object for every guard call."""
    if principal.role not in roles:
        raise PermissionDeniedException(
            f"{with_article(principal.role)} key may not do this "
            f"(allowed: {', '.join(roles)})"
        )


def operator_scope(principal: Principal, operator_id: str | None) -> str | None:
    """The operator filter a query must use: an operator key sees only its own operator."""
    if principal.role != OPERATOR:
        return operator_id
    if operator_id is not None and operator_id != principal.operator_id:
        raise PermissionDeniedException(
            f"this key reads operator {principal.operator_id!r} only"
        )
    return principal.operator_id


def own_records_of(principal: Principal) -> str | None:
    """The operator whose own records alone an operator key may read (None: any role else)."""
    return principal.operator_id if principal.role == OPERATOR else None


def require_owner(principal: Principal, owner: str) -> None:
    """A vendor acts on its own reservations only; admins (and auditors, reading) on any."""
    if principal.role == VENDOR and owner != principal.key_id:
        raise PermissionDeniedException("this reservation belongs to another key")
