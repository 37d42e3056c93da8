"""The service under hostile input: every bad body gets a 400 or 422 with a message, never a
500; no error quotes what was sent; a client that hangs up is no server error; a wrong
method gets 405 with `Allow`; a blank id is refused the same way wherever a lead is sent.

In-process (TestClient) where that is the same, and against a real `leadml serve` (uvicorn)
for what only a real server shows: hang-ups, headers on the wire, its log.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from fastapi.testclient import TestClient

from leadml.api import create_app
from leadml.config import ServeSettings

pytestmark = pytest.mark.slow


def client(model, **serve) -> TestClient:
    return TestClient(create_app(serve=ServeSettings(reload_seconds=0, **serve), model=model))


def test_wrong_method_gets_405_with_allow(crm_model):
    with client(crm_model) as c:
        for method, path, allowed in [("GET", "/predict", "POST"), ("PUT", "/predict", "POST"),
                                      ("POST", "/model", "GET"), ("GET", "/admin/reload", "POST")]:  # fmt: skip
            r = c.request(method, path)
            assert r.status_code == 405 and allowed in r.headers["allow"], (method, path)
            assert r.json()["error"] == "Method Not Allowed"


def test_a_client_that_hangs_up_mid_body_is_499_not_500(crm_model, caplog):
    """uvicorn tells the app with an http.disconnect message while it reads the body."""
    app = create_app(serve=ServeSettings(reload_seconds=0), model=crm_model)
    messages = [{"type": "http.request", "body": b'{"lead_id": "L1", "job_ti', "more_body": True},
                {"type": "http.disconnect"}]  # fmt: skip
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/predict", "raw_path": b"/predict", "root_path": "",
             "query_string": b"", "headers": [(b"content-type", b"application/json"),
                                              (b"content-length", b"4000")],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}  # fmt: skip
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    caplog.set_level(logging.INFO)
    asyncio.run(app(scope, receive, send))
    assert not [m for m in sent if m.get("status") == 500]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    metrics = app.state.metrics.exposition()[0].decode()
    assert 'leadml_requests_total{route="/predict",status="499"} 1.0' in metrics
    assert 'status="500"' not in metrics
