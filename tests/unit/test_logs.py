"""ledger.logs: one handler for every logger, and a logger switched off stays off."""

from __future__ import annotations

import io
import json
import logging

from ledger.logs import configure_logging


def test_access_log_switched_off_by_uvicorn_stays_off_and_one_with_handlers_is_routed(
) -> None:
    access, error = logging.getLogger("uvicorn.access"), logging.getLogger("uvicorn.error")
    saved = [(lg, list(lg.handlers), lg.propagate) for lg in (access, error)]
    out = io.StringIO()
    try:
        # As uvicorn leaves them without --access-log: no handler, not propagating.
        access.handlers, access.propagate = [], False
        error.handlers, error.propagate = [logging.NullHandler()], False
        configure_logging(json=True, stream=out)
        access.info("GET /health 200")
        error.info("started")
        lines = [json.loads(x) for x in out.getvalue().splitlines()]
        assert [x["event"] for x in lines] == ["started"]
        # With a handler of its own (uvicorn --access-log) it is routed through ours.
        access.handlers = [logging.NullHandler()]
        configure_logging(json=True, stream=out)
        access.info("GET /health 200")
        assert json.loads(out.getvalue().splitlines()[-1])["event"] == "GET /health 200"
    finally:
        for lg, handlers, propagate in saved:
            lg.handlers, lg.propagate = handlers, propagate
        configure_logging()
