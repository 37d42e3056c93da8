"""Operations routes without a model: the service stays up, says why, and guards reload."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from leadml.api import create_app
from leadml.config import ServeSettings, Settings


@pytest.fixture
def client(tmp_path):
    serve = ServeSettings(model_uri=str(tmp_path / "none"), reload_seconds=0, api_key="k")
    with TestClient(create_app(Settings.from_env(tmp_path), serve)) as c:
        yield c


def test_alive_without_a_model_but_not_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 503 and r.json()["error"].startswith("no model loaded (")
    assert "scorer.json missing" in r.json()["error"]


def test_reload_needs_the_key_and_says_why_it_failed(client):
    assert client.post("/admin/reload").status_code == 401
    r = client.post("/admin/reload", headers={"X-API-Key": "k"})
    assert r.status_code == 503
    assert r.json()["error"].endswith("still serving the previous model")


def test_routes_that_need_a_model_answer_503_with_the_key_401_without(client):
    for method, path in (("get", "/model"), ("post", "/predict"), ("post", "/predict/batch")):
        assert getattr(client, method)(path).status_code == 401
        r = getattr(client, method)(path, headers={"X-API-Key": "k"})
        assert r.status_code == 503 and r.json()["errors"] == []
    assert client.get("/ledger").status_code == 503


def test_metrics_count_the_answers(client):
    client.get("/health")
    client.get("/nothing-here")
    text = client.get("/metrics").text
    assert 'leadml_requests_total{route="/health",status="200"}' in text
    assert 'leadml_requests_total{route="other",status="404"}' in text
