"""The service under hostile input: every bad body gets a 400 or 422 with a message, never a
500; no error quotes what was sent; a client that hangs up is no server error; a wrong
method gets 405 with `Allow`; a blank id is refused the same way wherever a lead is sent.

In-process (TestClient) where that is the same, and against a real `leadml serve` (uvicorn)
for what only a real server shows: hang-ups, headers on the wire, its log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import httpx2
import pytest
from fastapi.testclient import TestClient

from leadml.api import create_app
from leadml.config import ServeSettings, TrainConfig
from leadml.serving import LoadedModel
from leadml.train import fit
from tests.conftest import leadml_serve, make_flat

pytestmark = pytest.mark.slow
MB = 1_000_000


def client(model, **serve) -> TestClient:
    return TestClient(create_app(serve=ServeSettings(reload_seconds=0, **serve), model=model))


@pytest.fixture(scope="module")
def lead(crm_records) -> dict:
    return crm_records[1]


def _replace(lead: dict, field: str, raw: bytes) -> bytes:
    """The lead as JSON with `field`'s value replaced by raw JSON text."""
    marker = "\u2603"  # a snowman, nowhere else in the lead
    text = json.dumps({**lead, field: marker}, ensure_ascii=False).encode()
    return text.replace(json.dumps(marker, ensure_ascii=False).encode(), raw)


def _event(lead: dict, key: str, raw: bytes) -> bytes:
    event = {"occurred_at": "2026-06-01T10:00:00", "event_type": "demo_request", key: "\u2603"}
    body = json.dumps({**lead, "events": [event]}, ensure_ascii=False).encode()
    return body.replace('"\u2603"'.encode(), raw)


def _post(c: TestClient, body: bytes, path: str = "/predict"):
    return c.post(path, content=body, headers={"content-type": "application/json"})


def _assert_refused(r, statuses=(400, 422)) -> dict:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    body = r.json()
    assert body["error"] and len(r.content) < 5000, r.text[:300]
    return body


DEEP = 100_000
NESTED = {
    "lists in a field": lambda lead: _replace(lead, "job_title", b"[" * DEEP + b"]" * DEEP),
    "objects in a field": lambda lead: _replace(
        lead, "industry", b'{"a":' * DEEP + b"1" + b"}" * DEEP
    ),
    "lists at the top": lambda lead: b"[" * DEEP + b"]" * DEEP,
    "in the batch's leads": lambda lead: b'{"leads": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    "1,000 deep in an ignored field": lambda lead: _replace(
        lead, "notes", b"[" * 1000 + b"]" * 1000
    ),
    "300 deep in an event": lambda lead: _event(lead, "page", b"[" * 300 + b"]" * 300),
}


@pytest.mark.parametrize("case", list(NESTED))
def test_deeply_nested_json_gets_400_that_says_so(crm_model, lead, case):
    with client(crm_model) as c:
        body = _assert_refused(_post(c, NESTED[case](lead)), (400,))
    assert "nested more than 200 levels deep" in body["error"]


DIGITS = 5000  # past the 4,300 digits Python turns into an int, and past any float
NUMBERS = {
    "lead_id": lambda lead, n: _replace(lead, "lead_id", n),
    "job_title": lambda lead, n: _replace(lead, "job_title", n),
    "as_of": lambda lead, n: _replace(lead, "as_of", n),
    "ignored field": lambda lead, n: _replace(lead, "score_hint", n),
    "event_type": lambda lead, n: _event(lead, "event_type", n),
    "occurred_at": lambda lead, n: _event(lead, "occurred_at", n),
}


@pytest.mark.parametrize("digits", [DIGITS, MB])
@pytest.mark.parametrize("where", list(NUMBERS))
def test_numbers_with_thousands_of_digits_get_400(crm_model, lead, where, digits):
    with client(crm_model) as c:
        body = _assert_refused(_post(c, NUMBERS[where](lead, b"9" * digits)), (400,))
    assert "a number with more digits than a number can have" in body["error"]
    assert "9" * 20 not in body["error"]


FLAT_LEAD = {
    "customer_ref": "C1",
    "web_visits": 3,
    "minutes_on_site": 12.5,
    "plan_interest": "Pro",
    "sales_region": "North",
    "newsletter": "yes",
}


BEYOND_FLOAT = [
    (field, number)
    for field in ("web_visits", "minutes_on_site", "customer_ref")
    for number in (b"1e400", b"-1e400", b"1" + b"0" * 400)
] + [("web_visits", b'"1e400"'), ("minutes_on_site", b'"-1e400"')]  # numbers in text


@pytest.mark.parametrize("field, number", BEYOND_FLOAT)
def test_numbers_beyond_a_float_get_422_naming_the_field(flat_model, field, number):
    """Already refused on 10c1925: kept as a guard (the lead's own numeric fields)."""
    with client(flat_model) as c:
        body = _assert_refused(_post(c, _replace(FLAT_LEAD, field, number)), (422,))
    assert [(e["lead"], e["field"]) for e in body["errors"]] == [(0, field)]
    assert "0" * 50 not in json.dumps(body)


ENCODINGS = {
    "invalid UTF-8 inside a string": lambda lead: _replace(
        lead, "job_title", b'"VP \xff\xfe Sales"'
    ),
    "invalid UTF-8 inside a key": lambda lead: (
        json.dumps(lead).encode().replace(b'"job_title"', b'"job\xfftitle"')
    ),
    "a truncated UTF-8 sequence in the id": lambda lead: _replace(lead, "lead_id", b'"L\xc3"'),
    "UTF-16 with a byte order mark": lambda lead: json.dumps(lead).encode("utf-16"),
    "UTF-16 without one": lambda lead: json.dumps(lead).encode("utf-16-le"),
    "UTF-32": lambda lead: json.dumps(lead).encode("utf-32"),
    "Latin-1": lambda lead: json.dumps(
        {**lead, "job_title": "Directrice générale"}, ensure_ascii=False
    ).encode("latin-1"),
}


@pytest.mark.parametrize("case", list(ENCODINGS))
def test_bodies_that_are_not_utf8_get_400_that_says_so(crm_model, lead, case):
    with client(crm_model) as c:
        body = _assert_refused(_post(c, ENCODINGS[case](lead)), (400,))
    assert "UTF-8" in body["error"]
    assert "UTF-16" in body["error"] or "offset" in body["error"]  # says what, or where


def test_a_utf8_byte_order_mark_is_allowed(crm_model, lead):
    with client(crm_model) as c:
        r = _post(c, b"\xef\xbb\xbf" + json.dumps(lead).encode())
    assert r.status_code == 200 and r.json()["predictions"][0]["lead_id"] == lead["lead_id"]


@pytest.mark.parametrize("field", ["lead_id", "job_title"])
def test_a_lone_surrogate_gets_400(crm_model, lead, field):
    with client(crm_model) as c:
        body = _assert_refused(_post(c, _replace(lead, field, b'"\\udc00 x"')), (400,))
    assert "surrogate" in body["error"] or "escape" in body["error"]


STRINGS = {
    "lead_id": (lambda lead, s: {**lead, "lead_id": s}, 422, "lead_id"),
    "job_title": (lambda lead, s: {**lead, "job_title": s}, 422, "job_title"),
    "event page": (
        lambda lead, s: {
            **lead,
            "events": [
                {"occurred_at": "2026-06-01T10:00:00", "event_type": "page_view", "page": s}
            ],
        },
        422,
        "events[0].page",
    ),
    "as_of": (lambda lead, s: {**lead, "as_of": s}, 422, "as_of"),
    "an ignored field": (lambda lead, s: {**lead, "remarks": s}, 200, None),
    "a key": (lambda lead, s: {**lead, s: 1}, 200, None),
}


@pytest.mark.parametrize("case", list(STRINGS))
def test_strings_of_a_megabyte_are_refused_or_ignored_never_echoed(crm_model, lead, case):
    make, status, field = STRINGS[case]
    with client(crm_model) as c:
        r = c.post("/predict", json=make(lead, "Q" * MB))
    assert r.status_code == status, r.text[:300]
    assert "Q" * 80 not in r.text and len(r.content) < 5000
    if field:
        assert [(e["lead"], e["field"]) for e in r.json()["errors"]] == [(0, field)]


def test_wrong_method_gets_405_with_allow(crm_model):
    with client(crm_model) as c:
        for method, path, allowed in [
            ("GET", "/predict", "POST"),
            ("PUT", "/predict", "POST"),
            ("POST", "/model", "GET"),
            ("GET", "/admin/reload", "POST"),
        ]:
            r = c.request(method, path)
            assert r.status_code == 405 and allowed in r.headers["allow"], (method, path)
            assert r.json()["error"] == "Method Not Allowed"


def test_a_client_that_hangs_up_mid_body_is_499_not_500(crm_model, caplog):
    """uvicorn tells the app with an http.disconnect message while it reads the body."""
    app = create_app(serve=ServeSettings(reload_seconds=0), model=crm_model)
    messages = [
        {"type": "http.request", "body": b'{"lead_id": "L1", "job_ti', "more_body": True},
        {"type": "http.disconnect"},
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"4000")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
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


# ---- the real server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(crm_model, tmp_path_factory):
    """`leadml serve` (uvicorn, httptools, one worker) on the CRM fixture's export."""
    home = tmp_path_factory.mktemp("hostile_home")
    args = ("--workers", "1", "--model", crm_model.uri, "--reload-seconds", "0")
    with leadml_serve(home, *args) as served:
        yield served.url, served.port
    # no hostile request logs an error
    assert "ERROR" not in served.log and "Traceback" not in served.log, served.log


def _hang_up_mid_body(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n" + b'{"lead_id": "L1", "job_title": "' + b"a" * 4000
        )
        time.sleep(0.2)  # the server has started reading the body


def test_real_server_hostile_input_never_gives_500(server, lead):
    url, port = server
    with httpx2.Client(base_url=url, timeout=60) as c:
        for make in [*NESTED.values(), *ENCODINGS.values()]:
            r = c.post("/predict", content=make(lead), headers={"content-type": "application/json"})
            assert r.status_code == 400 and r.json()["error"], r.text[:200]
        r = c.post("/predict", content=NUMBERS["lead_id"](lead, b"9" * MB))
        assert r.status_code == 400
        r = c.post("/predict", content=_replace(lead, "lead_id", b'"\\udc00"'))
        assert r.status_code == 400
        r = c.get("/predict")
        assert r.status_code == 405 and r.headers["allow"] == "POST"
        _hang_up_mid_body(port)
        deadline = time.monotonic() + 30
        while 'status="499"' not in (metrics := c.get("/metrics").text):
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
    assert 'leadml_requests_total{route="/predict",status="499"} 1.0' in metrics
    assert 'status="500"' not in metrics


# ---- blank ids ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rowid_model(tmp_path_factory) -> LoadedModel:
    """A flat model without an id column: `row_id` is optional, and no field is required."""
    path = tmp_path_factory.mktemp("rowid") / "export.csv"
    make_flat(800, seed=5).drop(columns=["customer_ref"]).to_csv(path, index=False)
    cfg = TrainConfig.model_validate({"flat": {"target": "won"}, "model": {"baseline": False}})
    result, _ = fit(path, cfg)
    assert result.scorer.spec.id_column == "row_id"
    return LoadedModel.build(result.scorer, "leadml", "1", str(path.parent), "fp")


def _model_and_lead(request, kind: str, crm_records) -> tuple[LoadedModel, dict, str]:
    if kind == "crm":
        return request.getfixturevalue("crm_model"), crm_records[1], "lead_id"
    if kind == "flat":
        return request.getfixturevalue("flat_model"), FLAT_LEAD, "customer_ref"
    flat = {k: v for k, v in FLAT_LEAD.items() if k != "customer_ref"}
    return request.getfixturevalue("rowid_model"), {**flat, "row_id": "R-1"}, "row_id"


@pytest.mark.parametrize("blank", ["", "   "])
@pytest.mark.parametrize("kind", ["crm", "flat", "flat without an id column"])
def test_a_blank_id_is_refused_the_same_way_everywhere(request, crm_records, kind, blank):
    model, good, id_field = _model_and_lead(request, kind, crm_records)
    bad = {**good, id_field: blank}
    sends = [
        ("/predict", bad, 0),
        ("/predict", {"leads": [good, bad]}, 1),
        ("/predict/batch", {"leads": [good, bad]}, 1),
    ]
    message = "blank: an id needs a character other than spaces"
    with client(model) as c:
        for path, body, index in sends:
            expected = [{"lead": index, "lead_id": None, "field": id_field, "message": message}]
            r = c.post(path, json=body)
            assert r.status_code == 422 and r.json()["errors"] == expected, (path, r.text[:300])
            assert f"lead {index}, field {id_field}: {message}" in r.json()["error"]
            r = c.post(path, json=body, params={"skip_invalid": "true", "reasons": "false"})
            assert r.status_code == 200 and r.json()["rejected"] == expected, (path, r.text[:300])
            scored = [p["lead_id"] for p in r.json()["predictions"]]
            assert scored == ([str(good[id_field])] if index else [])


def test_a_batch_with_a_bad_lead_is_never_scored_as_one_lead(rowid_model):
    """No field of this model is required, so {"leads": [...]} also reads as one lead
    (with an ignored field "leads") when a lead in it is invalid."""
    lead = {k: v for k, v in FLAT_LEAD.items() if k != "customer_ref"}
    with client(rowid_model) as c:
        r = c.post("/predict", json={"leads": [lead, {**lead, "web_visits": "lots"}]})
    assert r.status_code == 422, r.text[:300]
    assert [(e["lead"], e["field"]) for e in r.json()["errors"]] == [(1, "web_visits")]


def test_a_row_id_left_out_or_null_is_the_lead_place_in_the_request(rowid_model):
    """What an absent row_id means (already so on 10c1925; kept as the documented rule)."""
    lead = {k: v for k, v in FLAT_LEAD.items() if k != "customer_ref"}
    batch = {"leads": [lead, {**lead, "row_id": None}, {**lead, "row_id": " R-9 "}]}
    with client(rowid_model) as c:
        r = c.post("/predict", json=batch, params={"reasons": "false"})
    assert [p["lead_id"] for p in r.json()["predictions"]] == ["1", "2", "R-9"]
