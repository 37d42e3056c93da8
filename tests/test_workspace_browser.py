"""The workspace in a real browser (Chromium through Playwright, every outside host blocked)."""

from __future__ import annotations

import pytest

from leadml.api import create_app
from leadml.config import ServeSettings
from tests.browser import browser_page, needs_chromium, serve_app

pytestmark = [pytest.mark.slow, needs_chromium]


def test_login_then_the_overview_by_keyboard_offline(crm_model):
    app = create_app(serve=ServeSettings(reload_seconds=0, api_key="k1"), model=crm_model)
    with serve_app(app) as base, browser_page(base) as (page, blocked):
        page.goto(f"{base}/workspace/overview")
        assert page.url.startswith(f"{base}/workspace/login")
        page.get_by_label("Key").fill("k1")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/workspace/overview")
        assert page.get_by_role("heading", name="Overview").is_visible()
        assert page.locator('nav a[aria-current="page"]').inner_text() == "Overview"
        assert blocked == []
