"""The workspace's lead lookup: a scored lead's score, band, reasons in words and grades from
the score store, its history chart with the band lines, what changed between its last two
scores (the same words as GET /leads/{id}/history), and plain sentences for an unknown id
and for a service that keeps no scores."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from leadml.api import create_app
from leadml.config import ServeSettings, Settings, StoreSettings
from tests.test_workspace_overview import accessible


def app(model, home, url: str = ""):
    url = url or f"sqlite:///{home / 'store.db'}"
    store = StoreSettings(store_url=None if url == "off" else url)
    return create_app(Settings.from_env(home), ServeSettings(reload_seconds=0), model, store)


def kept(c: TestClient, lead_id: str, scores: int) -> dict:
    """The lead's history once the store has `scores` of its scores (the recorder writes in
    the background; the API's read flushes it first)."""
    h = c.get(f"/leads/{lead_id}/history").json()
    assert len(h["entries"]) == scores, h
    return h


def test_the_form_is_labelled(crm_model, tmp_path):
    with TestClient(app(crm_model, tmp_path)) as c:
        page = c.get("/workspace/lead")
    assert page.status_code == 200
    assert '<label for="lead_id">' in page.text and 'id="lead_id"' in page.text
    accessible(page.text)


def test_a_scored_lead_shows_its_score_reasons_and_grades(crm_model, crm_records, tmp_path):
    lead = crm_records[2]
    with TestClient(app(crm_model, tmp_path)) as c:
        p = c.post("/predict", json=lead).json()["predictions"][0]
        kept(c, lead["lead_id"], 1)
        page = c.get("/workspace/lead", params={"lead_id": lead["lead_id"]})
    assert page.status_code == 200, page.text
    text = page.text
    assert f'id="lead-score">{p["score"]}<' in text
    assert f'id="lead-band">{p["band"]}<' in text
    assert f"{p['probability'] * 100:.1f}% chance" in text
    for name in ("grid", "temperature", "stage"):
        assert f"<td>{p[name]}" in text, name
    positive, negative = p["reasons"]["positive"], p["reasons"]["negative"]
    assert positive or negative
    if positive:
        top = positive[0]
        words = f"{top['field'].replace('_', ' ')} adds {abs(top['points']):g} point"
        first = re.search(r'<ul id="reasons-positive"><li>(.*?)</li>', text).group(1)
        assert first.startswith(words)
    if negative:
        assert "takes off" in re.search(r'<ul id="reasons-negative">.*?</ul>', text).group(0)
    chart = re.search(r"<svg.*?</svg>", text, re.S).group(0)
    assert chart.count('<circle class="point"') == 1
    assert 'class="band-line band-line-SQL"' in chart and 'class="band-line band-line-MQL"' in chart
    assert "scored once" in text
    assert lead.get("email") is None or lead["email"] not in text  # no personal data shown
    assert "http://" not in text and "https://" not in text  # nothing fetched from outside
    accessible(text)


def test_two_scores_show_the_history_and_what_changed(crm_model, crm_records, tmp_path):
    with TestClient(app(crm_model, tmp_path)) as c:
        preds = c.post("/predict", params={"reasons": "false"}, json={"leads": crm_records}).json()
        ranked = sorted(
            zip(preds["predictions"], crm_records, strict=True), key=lambda x: x[0]["score"]
        )
        low, high = ranked[0][1], ranked[-1][1]
        c.post("/predict", json={**low, "lead_id": "L-X"})
        c.post("/predict", json={**high, "lead_id": "L-X"})
        h = kept(c, "L-X", 2)
        page = c.get("/workspace/lead", params={"lead_id": "L-X"}).text
    newer, older = h["entries"]
    (change,) = h["changes"]
    said = re.search(r'<p id="lead-change">(.*?)</p>', page, re.S).group(1)
    assert f"from {older['score']} ({older['band']}) to {newer['score']} ({newer['band']})" in (
        " ".join(said.split())
    )
    listed = re.findall(
        r"<li>(.*?)</li>", re.search(r'id="lead-change-what">.*?</ul>', page, re.S).group(0)
    )
    assert listed == change["what"]
    chart = re.search(r"<svg.*?</svg>", page, re.S).group(0)
    assert chart.count('<circle class="point"') == 2 and "<polyline" in chart
    assert f"is {h['trend']['direction']}" in page


def test_an_unknown_lead_and_a_store_that_is_off(crm_model, tmp_path):
    with TestClient(app(crm_model, tmp_path)) as c:
        r = c.get("/workspace/lead", params={"lead_id": "L-404"})
        typed = c.get("/workspace/lead", params={"lead_id": "<b>L</b>"})
    assert r.status_code == 404
    assert "No score kept for lead L-404." in r.text and "Check the id" in r.text
    assert "&lt;b&gt;L&lt;/b&gt;" in typed.text and "<b>L</b>" not in typed.text  # escaped
    with TestClient(app(crm_model, tmp_path, url="off")) as c:
        r = c.get("/workspace/lead", params={"lead_id": "L-1"})
    assert r.status_code == 404 and "LEADML_STORE_URL=off" in r.text
