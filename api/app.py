"""The Litestar application factory: the one place the API is wired.

Settings are read once (here, or passed in by tests); the engine, ledger,
cache and throttle are built in the lifespan, on the loop that serves the
requests, never at import: an engine built on another event loop fails there
with "attached to a different loop" (Litestar's test client runs the app on its
own loop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.di import Provide
from litestar.logging import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from api.auth import PUBLIC_PATHS, KeyAuthMiddleware
from api.dashboard import dashboard_routes
from api.docs_ui import assets_router, swagger_plugin
from api.metrics import SCRAPE, RequestContext, before_send, metrics_endpoint
from api.problems import QuotaExceeded, Throttled, handle_exception
from api.routes import ROUTES
from api.services import Services, build_services
from api.wire import MAX_BODY_BYTES
from ledger.clock import Clock
from ledger.errors import Conflict, IdempotencyMismatch, InvalidInput, NotFound, Unavailable
from ledger.logs import configure_logging
from ledger.settings import Settings, get_settings

API_VERSION = "1.0.0"
# Expected outcomes are logged as one line, not a stack trace (exact classes:
# Litestar matches the type, not its bases).
QUIET_STATUSES: set[int | type[Exception]] = {
    400, 401, 403, 404, 405, 409, 413, 415, 422, 429,
    InvalidInput, NotFound, Conflict, IdempotencyMismatch, Unavailable, QuotaExceeded, Throttled,
}


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="TPP quota ledger",
        version=API_VERSION,
        description="The books for exported AI compute, in whole TPP units. "
        "Errors are RFC 9457 problem+json.",
        path="/schema",
        use_handler_docstrings=True,
        render_plugins=[swagger_plugin()],
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(type="http", scheme="bearer",
                                         description="`ledger keys create` prints a key once")
            }
        ),
        security=[{"apiKey": []}],
    )


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> Litestar:
    """Builds the app. `settings` default to the environment; `clock` to the system clock."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = build_services(settings, clock)
        app.state.services = services
        SCRAPE.add(services)  # /metrics reads bucket use and breaker state from these
        if services.revocations is not None:  # serve once revocations reach this process
            await services.revocations.wait_subscribed(timeout=2.0)
        jobs = None
        if settings.jobs_in_serve:  # the embedded default: the scheduler lives here
            from jobs.runner import start_in_process

            jobs = start_in_process(services.ledger, settings)
        try:
            yield
        finally:
            SCRAPE.discard(services)
            if jobs is not None:
                jobs.shutdown(wait=False)
            await services.close()

    def provide_services(request: Request[Any, Any, Any]) -> Services:
        services: Services = request.app.state.services
        return services

    app = Litestar(
        route_handlers=[*ROUTES, metrics_endpoint, assets_router(), *dashboard_routes()],
        lifespan=[lifespan],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        # RequestContext first: the request id is bound before anything logs.
        middleware=[RequestContext,
                    DefineMiddleware(KeyAuthMiddleware, exclude=[*PUBLIC_PATHS, "^/metrics$"])],
        before_send=[before_send],  # X-Request-ID and HTTP metrics, error answers included
        exception_handlers={Exception: handle_exception},
        openapi_config=openapi_config(),
        request_max_body_size=MAX_BODY_BYTES,
        logging_config=LoggingConfig(
            log_exceptions="always", disable_stack_trace=QUIET_STATUSES,
            # Records go to the root logger, where ledger.logs renders them (JSON).
            configure_root_logger=False,
            loggers={"litestar": {"level": "INFO", "handlers": [], "propagate": True}},
        ),
    )
    configure_logging()
    return app
