"""The served OpenAPI document, for the checked-in copy (docs/openapi.json).

Regenerate after a deliberate contract change:

    .venv/bin/python -m api.openapi > docs/openapi.json

tests/api/test_openapi.py fails when the served document and the copy differ.
"""

from __future__ import annotations

import json
from typing import Any

from litestar.serialization import decode_json, encode_json

from api.app import create_app
from ledger.settings import Settings


def openapi_document() -> dict[str, Any]:
    """The document as /schema/openapi.json serves it (no database needed to build it)."""
    app = create_app(Settings(database_url="sqlite://", redis_url=None))
    # Round-trip through Litestar's encoder: the document holds Structs (examples).
    doc: dict[str, Any] = decode_json(encode_json(app.openapi_schema.to_schema()))
    return doc


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
