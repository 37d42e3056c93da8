"""The Bands page: lines recounted on the test leads' histogram, the three policies, and
saving (admin only) into the file the service applies at its reload."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from leadml import workspace_bands as wb
from leadml.api import create_app
from leadml.config import ServeSettings, Settings
from tests.browser import browser_page, needs_chromium, serve_app
from tests.test_workspace_overview import accessible


def hand_made() -> wb.Backtest:
    """10 leads in each of the 100 one-point bins; bin i converts i/10 of them (rounded)."""
    leads = np.full(100, 10.0)
    return wb.Backtest(leads, np.round(np.arange(100) / 10.0))


def test_the_table_recounts_each_band_from_the_histogram():
    rows = {r["band"]: r for r in wb.table(hand_made(), 0.2, 0.5, volume=100.0)}
    assert (rows["SQL"]["leads"], rows["MQL"]["leads"], rows["Unqualified"]["leads"]) == (
        500,
        300,
        200,
    )
    assert rows["SQL"]["per_week"] == pytest.approx(50.0)
    assert rows["SQL"]["conversion"] == pytest.approx(np.round(np.arange(50, 100) / 10).sum() / 500)


def test_top_n_and_minimum_precision_give_the_line_that_keeps_the_promise():
    bt = hand_made()
    line = wb.top_n_line(bt, volume=100.0, n=10)  # 10 a week of 100 = the top 10 bins
    assert line == pytest.approx(0.90)
    rate = wb.precision_line(bt, 0.9)
    leads = bt.leads[bt.first_bin(rate) :].sum()
    assert bt.conversions[bt.first_bin(rate) :].sum() / leads >= 0.9
    assert wb.precision_line(bt, 2.0) is None  # nothing converts twice


def csrf(text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


@pytest.fixture
def served_export(crm_model, tmp_path, monkeypatch):
    """A service loading an exported model folder (as `leadml serve` does), home in tmp."""
    monkeypatch.setenv("LEADML_HOME", str(tmp_path))
    folder = crm_model.scorer.save(tmp_path / "models" / "champion-copy")

    def app(**serve):
        return create_app(
            Settings.from_env(tmp_path),
            ServeSettings(reload_seconds=0, model_uri=str(folder), **serve),
        )

    return app


def counts(page: str, table: str) -> dict[str, int]:
    body = page.split(f'id="{table}"')[1].split("</table>")[0]
    return {
        band: int(n.replace(",", ""))
        for band, n in re.findall(r'data-band="(\w+)">.*?<td class="num">([\d,]+)</td>', body, re.S)
    }


def test_moving_the_sql_line_up_moves_leads_from_sql_to_mql(served_export):
    with TestClient(served_export()) as c:
        now = c.get("/workspace/bands")
        assert now.status_code == 200 and "Recount the bands" in now.text
        accessible(now.text)  # every input labelled, every table headed
        base = counts(now.text, "bands-now")
        higher = c.get("/workspace/bands", params={"sql": "0.8", "mql": "0.2"})
        new = counts(higher.text, "bands-new")
        assert new["SQL"] < base["SQL"] and new["MQL"] > base["MQL"]
        assert sum(new.values()) == sum(base.values())
        bad = c.get("/workspace/bands", params={"sql": "0.1", "mql": "0.3"})
        assert bad.status_code == 422 and "0 &lt; MQL &lt; SQL &lt; 1" in bad.text
        top = c.get("/workspace/bands", params={"policy": "top_n", "n": "5", "volume": "100"})
        assert counts(top.text, "bands-new")["SQL"] <= base["SQL"]


def test_saving_needs_the_admin_key_and_the_service_then_scores_with_the_new_lines(
    served_export, tmp_path
):
    with TestClient(served_export(admin_key="boss"), follow_redirects=False) as c:
        c.get("/workspace/bands")
        token = csrf(c.get("/workspace/login").text)
        form = {"csrf_token": token, "sql": "0.7", "mql": "0.3", "policy": "lines"}
        refused = c.post("/workspace/bands", data=form)
        assert refused.status_code == 403 and "admin key" in refused.json()["error"]
        no_token = c.post(
            "/workspace/bands", data={k: v for k, v in form.items() if k != "csrf_token"}
        )
        assert no_token.status_code == 403
        c.post("/workspace/login", data={"key": "boss", "csrf_token": token})
        saved = c.post("/workspace/bands", data=form)
        assert saved.status_code == 303 and "saved=" in saved.headers["location"]
        written = json.loads((tmp_path / "models" / "bands.json").read_text())
        assert (written["sql"], written["mql"]) == (0.7, 0.3)
        assert c.get("/model").json()["thresholds"]["sql"] == 0.7  # applied by this worker
        page = c.get(saved.headers["location"])
        assert "Saved." in page.text and "SQL</strong> from a 70.0%" in page.text


@pytest.mark.slow
@needs_chromium
def test_a_marketer_moves_the_sql_line_in_the_browser(served_export):
    with serve_app(served_export()) as base, browser_page(base) as (page, blocked):
        page.goto(f"{base}/workspace/bands")
        before = page.locator('#bands-new tr[data-band="SQL"] td').first.inner_text()
        page.get_by_label("SQL line", exact=False).fill("0.85")
        page.get_by_role("button", name="Recount the bands").click()
        page.wait_for_load_state()
        after = page.locator('#bands-new tr[data-band="SQL"] td').first.inner_text()
        assert int(after.replace(",", "")) < int(before.replace(",", ""))
        assert blocked == []
