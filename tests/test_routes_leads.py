"""/leads/{id} and /leads/{id}/history: every score the service gives is kept and read back,
a store outage never fails a prediction, history survives a restart."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from leadml.api import create_app
from leadml.config import ServeSettings, Settings, StoreSettings
from leadml.store import ScoreStore

pytestmark = pytest.mark.slow


def app(model, home, url: str = "", **serve):
    """The service with a store (SQLite under `home` unless `url`; "off": none)."""
    url = url or f"sqlite:///{home / 'store.db'}"
    store = StoreSettings(store_url=None if url == "off" else url)
    return create_app(
        Settings.from_env(home), ServeSettings(reload_seconds=0, **serve), model, store
    )


def two_bands(client: TestClient, leads: list[dict]) -> tuple[dict, dict]:
    """Two leads of the sample the model puts in different bands (lowest and highest score)."""
    preds = client.post("/predict", params={"reasons": "false"}, json={"leads": leads}).json()
    ranked = sorted(zip(preds["predictions"], leads, strict=True), key=lambda x: x[0]["score"])
    (low_p, low), (high_p, high) = ranked[0], ranked[-1]
    assert low_p["band"] != high_p["band"]
    return low, high


def test_predict_then_latest_and_history_return_what_was_scored(crm_model, crm_records, tmp_path):
    lead = crm_records[0]
    with TestClient(app(crm_model, tmp_path)) as c:
        p = c.post("/predict", json=lead).json()["predictions"][0]
        r = c.get(f"/leads/{lead['lead_id']}")
        assert r.status_code == 200, r.text
        latest = r.json()
        h = c.get(f"/leads/{lead['lead_id']}/history").json()
    for name in ("lead_id", "probability", "score", "band", "fit", "grid", "stage", "model"):
        assert latest[name] == p[name], name
    assert latest["model_version"] == "7"
    listed = p["reasons"]["positive"] + p["reasons"]["negative"]
    assert latest["reasons"] == [{"field": x["field"], "points": x["points"]} for x in listed]
    assert h["entries"] == [latest] and h["changes"] == []
    assert h["trend"] == {"direction": "flat", "slope": 0.0, "over": 1}


def test_an_unknown_lead_is_404_and_the_key_guards_the_routes(crm_model, tmp_path):
    with TestClient(app(crm_model, tmp_path, api_key="k")) as c:
        assert c.get("/leads/L-404").status_code == 401
        r = c.get("/leads/L-404", headers={"X-API-Key": "k"})
        assert r.status_code == 404 and "no score kept for this lead" in r.json()["error"]
        r = c.get("/leads/L-404/history", headers={"X-API-Key": "k"})
        assert r.status_code == 404
    with TestClient(app(crm_model, tmp_path, url="off")) as c:
        c.post("/predict", json={"leads": []})
        r = c.get("/leads/L-1")
        assert r.status_code == 404 and "LEADML_STORE_URL=off" in r.json()["error"]


def test_a_band_change_shows_in_changes_and_trend(crm_model, crm_records, tmp_path):
    with TestClient(app(crm_model, tmp_path)) as c:
        low, high = two_bands(c, crm_records)
        # the same lead id scored on two profiles: first the weak one, then the strong one
        first = c.post("/predict", json={**low, "lead_id": "L-X"}).json()["predictions"][0]
        second = c.post("/predict", json={**high, "lead_id": "L-X"}).json()["predictions"][0]
        h = c.get("/leads/L-X/history").json()
    assert [e["score"] for e in h["entries"]] == [second["score"], first["score"]]
    (change,) = h["changes"]
    assert (change["band_from"], change["band_to"]) == (first["band"], second["band"])
    assert (change["score_from"], change["score_to"]) == (first["score"], second["score"])
    assert any(w.startswith("feature ") for w in change["what"])
    assert any(w.startswith("reason ") for w in change["what"])
    assert h["trend"]["direction"] == "rising" and h["trend"]["slope"] > 0


def test_history_survives_a_restart(crm_model, crm_records, tmp_path):
    lead = crm_records[1]
    with TestClient(app(crm_model, tmp_path)) as c:
        for _ in range(3):
            assert c.post("/predict", json=lead).status_code == 200
    # shutdown flushed the queue; a new service on the same store has every score
    with TestClient(app(crm_model, tmp_path)) as c:
        h = c.get(f"/leads/{lead['lead_id']}/history", params={"limit": 2}).json()
    assert len(h["entries"]) == 2
    assert len(ScoreStore(f"sqlite:///{tmp_path / 'store.db'}").history(lead["lead_id"])) == 3


def test_a_store_that_is_down_never_fails_a_prediction(crm_model, crm_records, tmp_path):
    folder = tmp_path / "not-yet"  # SQLite cannot create its file in a missing folder
    service = app(crm_model, tmp_path, url=f"sqlite:///{folder / 'store.db'}")
    leads = crm_records[:3]
    with TestClient(service) as c:
        for lead in leads:
            assert c.post("/predict", json=lead).status_code == 200
        r = c.get(f"/leads/{leads[0]['lead_id']}")
        assert r.status_code == 503 and "score store cannot be read" in r.json()["error"]
        metrics = c.get("/metrics").text
        assert "leadml_store_up 0.0" in metrics
        assert "leadml_scores_queued 3.0" in metrics
        folder.mkdir()  # the store is back: what was queued is written
        r = c.get(f"/leads/{leads[0]['lead_id']}")
        assert r.status_code == 200, r.text
        metrics = c.get("/metrics").text
    assert "leadml_store_up 1.0" in metrics and "leadml_scores_recorded_total 3.0" in metrics
    store = ScoreStore(f"sqlite:///{folder / 'store.db'}")
    assert all(store.latest(lead["lead_id"]) for lead in leads)


def test_a_store_whose_writes_fail_counts_what_it_drops(crm_model, crm_records, tmp_path):
    service = app(crm_model, tmp_path)
    recorder = service.state.recorder
    recorder.capacity = 2

    def broken():
        raise OSError(28, "No space left on device")

    recorder.open_store = broken
    with TestClient(service) as c:
        for lead in crm_records[:4]:
            assert c.post("/predict", json=lead).status_code == 200
        recorder.flush(timeout=5)
        metrics = c.get("/metrics").text
    assert 'leadml_scores_not_recorded_total{reason="queue_full"}' in metrics
    assert recorder.lost >= 2
