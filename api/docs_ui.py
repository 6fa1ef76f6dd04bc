"""The interactive docs at /schema, working with no internet access.

Litestar's Swagger plugin loads Swagger UI (and a favicon) from a CDN by
default, which leaves a blank page on a machine without internet. The assets
come from the `swagger-ui-py` package instead (Swagger UI's own distribution
files, kept current by its maintainers), served by this app under
ASSETS_PATH: nothing on the page is fetched from another host.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

ASSETS_PATH = "/schema/assets"
ASSETS_DIR = Path(swagger_ui.__file__).parent / "static"
# What the page loads, checked at start.
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css",
               "favicon-32x32.png")


def swagger_plugin() -> SwaggerRenderPlugin:
    """Swagger UI at /schema, every asset from this app."""
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )


def assets_router() -> ControllerRouterHandler:
    """Serves the Swagger UI files (no auth: /schema is public, like the document)."""
    missing = [name for name in ASSET_FILES if not (ASSETS_DIR / name).is_file()]
    if missing:  # a broken install must fail at start, not as a blank page later
        raise RuntimeError(f"swagger-ui-py is missing {', '.join(missing)} in {ASSETS_DIR}")
    return create_static_files_router(
        path=ASSETS_PATH, directories=[ASSETS_DIR], include_in_schema=False,
        name="docs-assets",
    )
