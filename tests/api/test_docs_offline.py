"""The interactive docs work with no internet access (issue 9, defect 9): the /schema page
loads every script, style sheet and icon from this app, and each one is served."""

from __future__ import annotations

import re

from tests.api.conftest import Api

ASSET_REF = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def test_schema_page_loads_nothing_from_another_host(sqlite_api: Api) -> None:
    page = sqlite_api.get("/schema", role=None)
    assert page.status_code == 200, page.text
    assert "SwaggerUIBundle" in page.text
    refs = ASSET_REF.findall(page.text)
    assert len(refs) >= 4, refs  # css, bundle, preset, icon
    external = [r for r in refs if "//" in r]
    assert external == [], f"the docs page fetches from other hosts: {external}"
    for ref in refs:
        asset = sqlite_api.get(ref, role=None)  # public, like the page itself
        assert asset.status_code == 200, (ref, asset.status_code)
        assert len(asset.content) > 1_000, ref


def test_bundle_is_swagger_ui_javascript(sqlite_api: Api) -> None:
    r = sqlite_api.get("/schema/assets/swagger-ui-bundle.js", role=None)
    assert r.status_code == 200
    assert "javascript" in r.headers["content-type"]
    assert b"SwaggerUIBundle" in r.content
