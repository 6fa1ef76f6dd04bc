"""Structured logs (structlog): one JSON object per line, plain text on a terminal.

Every record, whether from structlog or from the standard library's `logging`
(uvicorn, Litestar, SQLAlchemy, this project's modules), goes through one handler
on stderr with structlog's ProcessorFormatter, so all lines share one format and
carry the context bound with `structlog.contextvars` (the API binds `request_id`
for each request). Format: `LEDGER_LOG_FORMAT=json|text` (default: text when
stderr is a terminal, else JSON); level: `LEDGER_LOG_LEVEL` (default INFO).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_HANDLER_NAME = "ledger-structlog"
# Loggers that configure their own handlers (uvicorn's dictConfig, Litestar's queue
# listener): theirs are removed so every line goes through ours exactly once.
_OWN_HANDLERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar")


def wants_json(stream: Any = None) -> bool:
    chosen = os.environ.get("LEDGER_LOG_FORMAT", "").strip().lower()
    if chosen in ("json", "text"):
        return chosen == "json"
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def _drop_color_message(_: Any, __: str, event_dict: Any) -> Any:
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured copy (an `extra`)
    return event_dict


def shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(json: bool | None = None, level: str | None = None,
                      stream: Any = None) -> None:
    """Installs the one handler (on stderr unless `stream`) on the root logger
    (idempotent: a second call replaces it; other handlers, such as pytest's, are
    left alone)."""
    stream = stream if stream is not None else sys.stderr
    json = wants_json(stream) if json is None else json
    level = (level or os.environ.get("LEDGER_LOG_LEVEL") or "INFO").upper()
    renderer: Any = (structlog.processors.JSONRenderer() if json
                     else structlog.dev.ConsoleRenderer(colors=False))
    final: list[Any] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        _drop_color_message]
    if json:
        final.append(structlog.processors.format_exc_info)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[*final, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _OWN_HANDLERS:
        logger = logging.getLogger(name)
        if not logger.handlers and not logger.propagate:
            # Switched off by its owner (uvicorn without --access-log leaves
            # `uvicorn.access` so): it stays off, rather than logging every request.
            continue
        logger.handlers.clear()
        logger.propagate = True
    structlog.configure(
        processors=[*shared_processors(), structlog.processors.StackInfoRenderer(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
