"""The workspace's overview: the champion in plain words from its card, the band table, the
reliability and lift charts as inline SVG, the grid, the monitor's verdict, and a 503 page
when no model is loaded."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from leadml import workspace_overview
from leadml.api import create_app
from leadml.config import ServeSettings, Settings, StoreSettings


def client(model, home) -> TestClient:
    app = create_app(
        Settings.from_env(home), ServeSettings(reload_seconds=0), model, StoreSettings()
    )
    return TestClient(app, base_url="http://testserver")


def overview(model, home) -> str:
    r = client(model, home).get("/workspace/overview")
    assert r.status_code == 200, r.text
    return r.text


def accessible(page: str) -> None:
    """Every visible input labelled, every table headed with scoped header cells."""
    for tag in re.findall(r"<input[^>]*>", page):
        if 'type="hidden"' in tag:
            continue
        ident = re.search(r'id="([^"]+)"', tag)
        assert ident and f'for="{ident.group(1)}"' in page, tag
    for table in re.findall(r"<table.*?</table>", page, re.S):
        assert '<th scope="' in table and "<td" in table


def test_the_champion_in_words_matches_its_card(crm_model, tmp_path):
    page = overview(crm_model, tmp_path)
    card, raw = crm_model.card(), crm_model.scorer.card
    assert "leadml version 7" in page
    trained = datetime.fromisoformat(card["trained_at"])
    assert f"on {trained:%Y-%m-%d}" in page
    assert f"{card['data']['leads']:,} leads" in page
    auc = card["metrics"]["roc_auc"]
    assert f"did not {auc * 100:.0f}% of the time" in page
    enough = [r for r in raw["reliability"] if r["leads"] >= workspace_overview.MIN_BIN_LEADS]
    top = max(enough, key=lambda r: r["predicted"])
    assert f"{top['observed'] * 100:.0f}% converted" in page
    assert f"score {round(card['thresholds']['sql'] * 100)})" in page
    accessible(page)


def test_the_band_table_and_grid_carry_the_cards_numbers(crm_model, tmp_path):
    page = overview(crm_model, tmp_path)
    table = re.search(r'<table id="band-table">.*?</table>', page, re.S).group(0)
    assert table.count('<th scope="col"') == 6
    for b in crm_model.card()["band_backtest"]:
        row = re.search(rf'<th scope="row" class="band-{b["band"]}">.*?</tr>', table, re.S)
        assert row, b["band"]
        assert f">{b['leads']:,}<" in row.group(0)
        assert f"{b['observed'] * 100:.1f}%" in row.group(0)
    grid = crm_model.card()["grades"]["backtest"]["grid"]
    for cell in grid:
        td = re.search(rf'data-cell="{cell["fit"]}{cell["engagement"]}">(.*?)</td>', page, re.S)
        assert td, cell
        text = td.group(1)
        assert f"{cell['leads']:,} leads" in text  # the number is written: reads in grey
        if cell["conversion"] is not None:
            assert f"{cell['conversion'] * 100:.0f}%" in text


def test_the_charts_are_inline_svg_with_labels_and_a_reading_guide(crm_model, tmp_path):
    page = overview(crm_model, tmp_path)
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert len(svgs) == 2
    reliability, lift = svgs
    assert 'role="img"' in reliability and "<title" in reliability
    assert "Chance the model gave" in reliability and "Share that converted" in reliability
    observed = [r for r in crm_model.scorer.card["reliability"] if r["observed"] == r["observed"]]
    assert reliability.count('<circle class="point"') == len(observed)
    assert lift.count('<rect class="bar"') == len(crm_model.scorer.card["lift"])
    top = crm_model.scorer.card["lift"][0]["lift"]
    assert f">{top:.1f}</text>" in lift
    assert page.count("How to read it:") == 2
    assert "https://" not in page and "<script" not in page


def test_an_older_card_without_the_tables_says_so(crm_model, tmp_path):
    scorer = copy.copy(crm_model.scorer)
    scorer.card = {k: v for k, v in scorer.card.items() if k not in ("reliability", "lift")}
    page = overview(dataclasses.replace(crm_model, scorer=scorer), tmp_path)
    assert "<svg" not in page
    assert 'id="no-reliability"' in page and 'id="no-lift"' in page
    assert "Too few test leads" in page  # no reliability table: nothing to quote


def test_the_monitors_verdict_and_report(crm_model, tmp_path):
    c = client(crm_model, tmp_path)
    assert "monitor's last verdict" not in c.get("/workspace/overview").text
    assert c.get("/workspace/monitor-report").status_code == 404
    folder = tmp_path / "monitor"
    folder.mkdir()
    result = {
        "verdict": "alert",
        "created_at": "2026-12-01T06:00:00+00:00",
        "reasons": ["the SQL band converted 31% against 62% promised"],
        "actions": ["retrain on recent leads"],
    }
    (folder / "latest.json").write_text(json.dumps(result))
    (folder / "latest.html").write_text("<html><body><h1>Monitor report</h1></body></html>")
    page = c.get("/workspace/overview").text
    assert 'class="status-alert"' in page and ">alert<" in page
    assert result["reasons"][0] in page and result["actions"][0] in page
    assert 'href="/workspace/monitor-report"' in page
    assert "Monitor report" in c.get("/workspace/monitor-report").text
    (folder / "latest.json").write_text("{not json")
    assert "cannot be read" in c.get("/workspace/overview").text


def test_no_model_is_a_503_page_that_says_what_to_do(tmp_path):
    r = client(None, tmp_path).get("/workspace/overview")  # no lifespan: nothing loads
    assert r.status_code == 503
    assert "No model is loaded" in r.text and "leadml train" in r.text


@pytest.mark.parametrize(
    ("days", "words"), [(0, "today"), (1, "yesterday"), (3, "3 days ago, on 2026-12-02")]
)
def test_trained_words(days, words):
    now = datetime(2026, 12, 2 + days, 9, tzinfo=UTC)
    assert words in workspace_overview.trained_words("2026-12-02T23:10:00+00:00", now)
