"""/docs (Swagger UI) and /redoc (ReDoc) load only leadml's own vendored files, so they work
with the network off: checked in a real browser with every outside host refused."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from leadml.api import create_app
from leadml.config import ServeSettings
from tests.browser import browser_page, needs_chromium, serve_app


def app(model):
    return create_app(serve=ServeSettings(reload_seconds=0), model=model)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_pages_name_only_files_leadml_serves(crm_model, path):
    with TestClient(app(crm_model)) as c:
        page = c.get(path)
        assert page.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/static/vendor/") for a in assets), assets
        for asset in assets:
            assert c.get(asset).status_code == 200, asset
        assert "fonts.googleapis" not in page.text and "cdn" not in page.text.lower()


@pytest.mark.slow
@needs_chromium
def test_swagger_ui_and_redoc_render_offline(crm_model):
    with serve_app(app(crm_model)) as base, browser_page(base) as (page, blocked):
        page.goto(f"{base}/docs")
        page.locator(
            "#operations-predict-predict_predict_post, .opblock-summary-path"
        ).first.wait_for(timeout=20_000)
        assert page.get_by_text("/predict/batch").first.is_visible()
        page.goto(f"{base}/redoc")
        page.get_by_text("leadml scoring service").first.wait_for(timeout=20_000)
        assert page.locator("h1, h2").filter(has_text="leadml scoring service").count() >= 1
        assert blocked == [], blocked
