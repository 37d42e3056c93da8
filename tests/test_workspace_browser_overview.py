"""The overview and the lead lookup in a real browser (Chromium, every outside host blocked):
the overview draws its charts, and a lead scored by /predict is found by typing its id."""

from __future__ import annotations

import time

import pytest

from leadml.api import create_app
from leadml.config import ServeSettings, Settings, StoreSettings
from tests.browser import browser_page, needs_chromium, serve_app

pytestmark = [pytest.mark.slow, needs_chromium]


def test_the_overview_charts_and_the_lead_lookup_offline(crm_model, crm_records, tmp_path):
    store = StoreSettings(store_url=f"sqlite:///{tmp_path / 'store.db'}")
    app = create_app(Settings.from_env(tmp_path), ServeSettings(reload_seconds=0), crm_model, store)
    lead = crm_records[3]
    with serve_app(app) as base, browser_page(base) as (page, blocked):
        answer = page.request.post(f"{base}/predict", data=lead).json()
        score = answer["predictions"][0]["score"]
        deadline = time.monotonic() + 10  # the recorder writes in the background
        while page.request.get(f"{base}/leads/{lead['lead_id']}").status != 200:
            assert time.monotonic() < deadline, "the score never reached the store"
            time.sleep(0.1)
        page.goto(f"{base}/workspace/overview")
        assert page.locator("svg.chart").count() == 2
        assert page.get_by_role("img", name="Lift").is_visible()
        assert page.locator("#band-table tbody tr").count() == 3
        page.get_by_role("link", name="Lead lookup").click()
        page.get_by_label("Lead id").fill(lead["lead_id"])
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/workspace/lead?lead_id={lead['lead_id']}")
        assert page.locator("#lead-score").inner_text() == str(score)
        assert page.locator("svg.chart circle").count() == 1
        assert blocked == []
