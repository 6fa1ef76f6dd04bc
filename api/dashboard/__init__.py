"""The web dashboard at `/`: one static page (HTML, vanilla JS, CSS) in this package.

Nothing is built and nothing is fetched from another host: the page and its two
assets are files under `static/`, served by this app. `/` and `/dashboard/...`
are public (the sign-in page must load without a key); every figure the page
shows comes from the /v1 API, called by the browser with the key the user typed,
which the page keeps in sessionStorage only (never a URL, a cookie or
localStorage).
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PATH = "/dashboard"
ASSET_FILES = ("index.html", "app.js", "app.css")
# Paths the key middleware lets through (regexes, as api.auth.PUBLIC_PATHS takes them).
PUBLIC_PATHS = ["^/$", f"^{ASSETS_PATH}/"]
# The page runs only its own script and style and talks only to this origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _check_assets() -> str:
    missing = [name for name in ASSET_FILES if not (STATIC_DIR / name).is_file()]
    if missing:  # a broken install must fail at start, not as a blank page later
        raise RuntimeError(f"the dashboard is missing {', '.join(missing)} in {STATIC_DIR}")
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


def dashboard_routes() -> list[ControllerRouterHandler]:
    """The page at `/` and its assets under /dashboard/ (no auth, not in the OpenAPI)."""
    page = _check_assets()

    @get("/", include_in_schema=False, sync_to_thread=False, name="dashboard")
    def index() -> Response[str]:
        return Response(page, media_type="text/html", headers=PAGE_HEADERS)

    assets = create_static_files_router(
        path=ASSETS_PATH, directories=[STATIC_DIR], include_in_schema=False,
        name="dashboard-assets", cache_control=CacheControlHeader(no_cache=True),
    )
    return [index, assets]
