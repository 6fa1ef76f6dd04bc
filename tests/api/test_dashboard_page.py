"""The dashboard's page and files (issue 13): public, served by this app alone, locked down
by a Content-Security-Policy, out of the OpenAPI document, and never keeping the key
anywhere but sessionStorage. Its behaviour in a browser: tests/browser."""

from __future__ import annotations

import re

from tests.api.conftest import Api

ASSET_REF = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def test_page_is_public_and_loads_only_its_own_files(sqlite_api: Api) -> None:
    page = sqlite_api.get("/", role=None)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    refs = [r for r in ASSET_REF.findall(page.text) if not r.startswith(("data:", "#"))]
    assert sorted(refs) == ["/dashboard/app.css", "/dashboard/app.js"], refs
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline
    for ref in refs:
        asset = sqlite_api.get(ref, role=None)
        assert asset.status_code == 200, (ref, asset.status_code)
        urls = re.findall(rb"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", asset.content)
        assert [u for u in urls if u != b"http://www.w3.org/2000/svg"] == [], (ref, urls)


def test_the_key_is_kept_in_session_storage_only(sqlite_api: Api) -> None:
    js = sqlite_api.get("/dashboard/app.js", role=None).text
    assert "sessionStorage.setItem" in js
    assert not re.search(r"localStorage\s*\.|document\.cookie|indexedDB", js)
    assert "Authorization" in js and "credentials: \"omit\"" in js


def test_data_still_needs_a_key_and_the_page_is_not_in_the_api_document(
    sqlite_api: Api,
) -> None:
    assert sqlite_api.get("/v1/policy", role=None).status_code == 401
    assert sqlite_api.get("/dashboard/missing.js", role=None).status_code == 404
    paths = sqlite_api.get("/schema/openapi.json", role=None).json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/dashboard")]
