"""Request-body examples for the OpenAPI document: one realistic body per write, the
same figures as the README's walk-through (a UAE operator, its consignee, 1,000 H100s)."""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import Example
from litestar.params import Body

LINE = {"destination_country": "AE", "operator_id": "g42", "consignee_id": "g42-abudhabi-1",
        "chip": "H100-SXM", "quantity": 1000, "license_id": None}

BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "operator": ("A UAE operator, not a validated end user",
                 {"name": "G42", "hq_country": "AE", "veu": None, "parent_country": None,
                  "address": "Masdar City, Abu Dhabi", "officers": ["A. Example"],
                  "owners": [{"name": "Example Holdings", "percent": 60}]}),
    "consignee": ("Its data center in Abu Dhabi",
                  {"name": "G42 Abu Dhabi 1", "country": "AE", "operator_id": "g42",
                   "group_id": None, "hq_country": None, "parent_country": None}),
    "license": ("A licence for the UAE naming that consignee",
                {"country": "AE", "tpp": 2_100_000_000, "consignee_id": "g42-abudhabi-1",
                 "valid_from": "2026-01-01", "valid_to": "2026-12-31"}),
    "reserve": ("1,000 H100 SXM to Abu Dhabi, held for a day",
                {"lines": [LINE], "hold_seconds": 86400}),
    "reverse": ("Correct a committed reservation",
                {"reason": "shipment cancelled by the vendor; customs entry withdrawn"}),
    "batch": ("Two reservations, each with its own idempotency key",
              {"reservations": [
                  {"idempotency_key": "order-0001", "lines": [LINE], "hold_seconds": 86400},
                  {"idempotency_key": "order-0002", "lines": [LINE | {"quantity": 200}]}]}),
    "clearance": ("Clear a screening match after review",
                  {"party_id": "acme-dc", "entry_id": "FX-0001",
                   "reason": "different company: registry extract and officers checked"}),
}


def body(name: str) -> Any:
    """The Body parameter (JSON) carrying the example `name` for the document."""
    summary, value = BODIES[name]
    return Body(examples=[Example(summary=summary, value=value)])
