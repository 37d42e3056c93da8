"""Band-change webhooks against a real HTTP receiver on localhost (stdlib http.server in a
thread). The sender's clock is injected, so "a minute" or "48 hours" pass without waiting;
the receiver dedupes on Idempotency-Key and checks each signature as a CRM would."""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from leadml import webhooks
from leadml.cli import main
from leadml.store import ScoreRecord, ScoreStore
from leadml.webhooks import Backoff, Sender

SECRET = "whsec-test-3f9a1c"
BANDS = ["MQL", "SQL", "Unqualified", "SQL"]  # three band changes per lead


class Receiver:
    """A CRM's webhook endpoint: answers 500 to the first `fail_first` requests of each event
    (after keeping it, as a receiver whose answer is lost would), then 200; keeps each event
    once per Idempotency-Key, and refuses (401) a bad signature."""

    def __init__(self, port: int = 0, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: Counter[str] = Counter()  # raw POSTs per key, duplicates included
        self.events: dict[str, dict] = {}  # after dedupe
        self.bad_signatures = 0
        self.authorization: list[str | None] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.receive(body, self.headers)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/leadml"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def receive(self, body: bytes, headers) -> int:
        with self.lock:
            self.authorization.append(headers.get("Authorization"))
            if not webhooks.verify(body, headers, SECRET):
                self.bad_signatures += 1
                return 401
            key = headers["Idempotency-Key"]
            assert json.loads(body)["idempotency_key"] == key
            self.requests[key] += 1
            self.events.setdefault(key, json.loads(body))
            return 500 if self.requests[key] <= self.fail_first else 200

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(**kwargs) -> Receiver:
        started.append(Receiver(**kwargs))
        return started[-1]

    yield start
    for r in started:
        r.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _store(tmp_path) -> ScoreStore:
    return ScoreStore(f"sqlite:///{tmp_path / 'store.db'}")


def _score_leads(store: ScoreStore, urls: tuple[str, ...], leads: int = 5) -> int:
    """Each lead scored four times, crossing bands three times; returns the band changes."""
    t0 = datetime.now(UTC)
    changes = 0
    for step, band in enumerate(BANDS):
        batch = [
            ScoreRecord(f"L{i}", t0 + timedelta(minutes=step), "leads", "3", 0.5, 50, band)
            for i in range(leads)
        ]
        changes += store.record(batch, urls)
    return changes


def _passes(sender: Sender, now: datetime, seconds: int, until_done: bool = True) -> datetime:
    """One delivery pass per injected second, as the service's loop makes them."""
    for _ in range(seconds):
        sender.deliver_due(now)
        now += timedelta(seconds=1)
        if until_done and not sender.store.outbox_counts().get("pending"):
            break
    return now


def _sender(store: ScoreStore, seed: int = 1) -> Sender:
    return Sender(store, SECRET, timeout_s=2.0, rng=random.Random(seed))


def test_a_receiver_failing_three_times_gets_every_band_change_once_signed(tmp_path, receivers):
    crm = receivers(fail_first=3)
    store = _store(tmp_path)
    assert _score_leads(store, (crm.url,)) == 15
    keys = {e.event_id for e in store.outbox_entries()}
    _passes(_sender(store), datetime.now(UTC), seconds=3600)
    assert set(crm.events) == keys  # none lost, none invented
    assert crm.bad_signatures == 0
    assert set(crm.requests.values()) == {4}  # three 500s, then the 200, for every event
    assert store.outbox_counts() == {"delivered": 15}
    changes = Counter((e["lead_id"], e["old_band"], e["new_band"]) for e in crm.events.values())
    assert changes == Counter(
        (f"L{i}", old, new) for i in range(5) for old, new in zip(BANDS, BANDS[1:], strict=False)
    )


def test_a_receiver_down_for_a_minute_has_everything_within_a_minute_of_coming_back(
    tmp_path, receivers
):
    port = _free_port()  # nothing listens there yet
    store = _store(tmp_path)
    _score_leads(store, (f"http://127.0.0.1:{port}/leadml",))
    sender = _sender(store)
    back = _passes(sender, datetime.now(UTC), seconds=60, until_done=False)
    assert store.outbox_counts() == {"pending": 15}
    tried = store.outbox_entries()
    assert max(e.attempts for e in tried) >= 4  # first retries came within seconds
    assert all("Connection refused" in (e.last_error or "") for e in tried if e.attempts)
    crm = receivers(port=port)
    done = _passes(sender, back, seconds=3600)
    assert store.outbox_counts() == {"delivered": 15} and len(crm.events) == 15
    assert done - back <= timedelta(seconds=Backoff().cap_s + 1)
    assert set(crm.requests.values()) == {1}


def test_a_new_sender_after_a_restart_delivers_what_the_old_one_left(tmp_path, receivers):
    crm = receivers(fail_first=1)
    store = _store(tmp_path)
    _score_leads(store, (crm.url,))
    now = _passes(_sender(store), datetime.now(UTC), seconds=3, until_done=False)
    left = store.outbox_counts()
    assert left.get("pending", 0) > 0
    # the old process died while holding a claim on one entry: it comes back when the lease ends
    (held,) = store.due(now, limit=1)
    assert store.claim(held.id, now, lease_s=60)
    reopened = ScoreStore(str(store.engine.url))
    _passes(_sender(reopened, seed=2), now, seconds=3600)
    assert reopened.outbox_counts() == {"delivered": 15}
    assert len(crm.events) == 15 and crm.bad_signatures == 0


def test_two_senders_on_one_store_never_post_an_entry_twice(tmp_path, receivers):
    crm = receivers()
    first = _store(tmp_path)
    _score_leads(first, (crm.url,), leads=20)
    second = ScoreStore(str(first.engine.url))
    now = datetime.now(UTC)
    (entry,) = first.due(now, limit=1)
    assert first.claim(entry.id, now, 60) and not second.claim(entry.id, now, 60)
    first.retry(entry.id, now, "test: let it go again")
    go = threading.Barrier(2)

    def deliver(store: ScoreStore) -> None:
        go.wait()
        _sender(store).deliver_due(now + timedelta(seconds=1))

    threads = [threading.Thread(target=deliver, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(crm.requests.values()) == 60 and set(crm.requests.values()) == {1}
    assert first.outbox_counts() == {"delivered": 60}


def test_giving_up_after_48_hours_marks_failed_and_replay_sends_it_again(
    tmp_path, receivers, monkeypatch, capsys
):
    crm = receivers(fail_first=10**6)
    store = _store(tmp_path)
    store.record([ScoreRecord("L1", datetime.now(UTC), "m", "1", 0.2, 20, "MQL")], (crm.url,))
    store.record([ScoreRecord("L1", datetime.now(UTC), "m", "1", 0.9, 90, "SQL")], (crm.url,))
    (entry,) = store.outbox_entries()
    sender = _sender(store)
    sender.deliver_due(entry.created_at + timedelta(hours=47))  # still within the window
    assert store.outbox_counts() == {"pending": 1}
    sender.deliver_due(entry.created_at + timedelta(hours=48, seconds=1))
    (failed,) = store.outbox_entries()
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 2, "HTTP 500")

    crm.fail_first = 0
    monkeypatch.setenv("LEADML_HOME", str(tmp_path))
    monkeypatch.setenv("LEADML_WEBHOOK_SECRET", SECRET)
    assert main(["webhooks", "--replay", "--send"]) == 0
    out = capsys.readouterr().out
    assert "replay: 1 failed entries pending again" in out and "send: 1 delivered" in out
    assert "0 pending, 0 failed, 1 delivered" in out and "MQL -> SQL" in out
    assert crm.requests[entry.event_id] == 3 and len(crm.events) == 1


def test_the_listing_shows_each_entry_without_secret_or_credentials(
    tmp_path, receivers, monkeypatch, capsys, caplog
):
    crm = receivers(fail_first=1)
    url = crm.url.replace("http://", "http://crm:pa%3Ass@") + "?token=q-secret"
    store = _store(tmp_path)
    _score_leads(store, (url,), leads=2)
    caplog.set_level(logging.DEBUG)
    sender = _sender(store)
    sender.deliver_due(datetime.now(UTC))
    monkeypatch.setenv("LEADML_HOME", str(tmp_path))
    monkeypatch.setenv("LEADML_WEBHOOK_SECRET", SECRET)
    assert main(["webhooks", "--status", "pending", "--limit", "6"]) == 0
    out = capsys.readouterr().out
    assert "6 pending, 0 failed, 0 delivered" in out and "latest 6 pending:" in out
    assert "HTTP 500" in out and "L0" in out and "SQL -> Unqualified" in out and crm.url in out
    assert base64.b64encode(b"crm:pa:ss").decode() in {a[6:] for a in crm.authorization if a}
    stored = [str(e) for e in store.outbox_entries()]
    for text in [out, caplog.text, repr(sender), *stored]:
        assert SECRET not in text
    for text in [out, caplog.text]:
        assert "pa%3Ass" not in text and "q-secret" not in text
    assert "webhook" in caplog.text  # the failed attempt was logged


def test_verify_accepts_what_was_sent_and_rejects_tampering_and_old_timestamps():
    body = b'{"idempotency_key":"k1","lead_id":"L1","new_band":"SQL"}'
    now = 1_780_000_000
    headers = webhooks.signed_headers(body, SECRET, "k1", now)
    assert headers["X-Leadml-Signature"].startswith("sha256=") and len(headers) == 5
    assert webhooks.verify(body, headers, SECRET, now=now + 299)
    lower = {name.lower(): value for name, value in headers.items()}
    assert webhooks.verify(body, lower, SECRET, now=now)
    assert not webhooks.verify(body.replace(b"SQL", b"MQL"), headers, SECRET, now=now)
    assert not webhooks.verify(body, headers, "another secret", now=now)
    assert not webhooks.verify(body, headers, SECRET, now=now + 301)  # a replay
    assert not webhooks.verify(body, headers, SECRET, tolerance_s=10, now=now + 11)
    moved = headers | {"X-Leadml-Timestamp": str(now + 100)}  # a fresh timestamp, old signature
    assert not webhooks.verify(body, moved, SECRET, now=now + 100)
    assert not webhooks.verify(body, {"X-Leadml-Timestamp": "soon"}, SECRET, now=now)
    assert not webhooks.verify(body, {}, SECRET, now=now)


def test_backoff_retries_within_seconds_caps_the_wait_and_jitters_within_bounds():
    backoff, rng = Backoff(), random.Random(7)
    assert [backoff.ceiling(a) for a in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    assert backoff.ceiling(10_000) == backoff.cap_s  # no overflow after days of failures
    for attempt in (0, 3, 12):
        waits = [backoff.delay(attempt, rng) for _ in range(2000)]
        top = backoff.ceiling(attempt)
        assert 0 <= min(waits) < 0.05 * top and 0.95 * top < max(waits) <= top  # full jitter
        assert 0.45 * top < sum(waits) / len(waits) < 0.55 * top
    assert Backoff().give_up_after >= timedelta(hours=24)


def test_the_service_delivers_in_the_background_when_urls_are_set(tmp_path, receivers, monkeypatch):
    from fastapi.testclient import TestClient

    from leadml.api import create_app
    from leadml.config import ServeSettings

    crm = receivers()
    _score_leads(_store(tmp_path), (crm.url,), leads=2)
    monkeypatch.setenv("LEADML_HOME", str(tmp_path))
    monkeypatch.setenv("LEADML_WEBHOOK_URLS", crm.url)
    monkeypatch.setenv("LEADML_WEBHOOK_SECRET", SECRET)
    app = create_app(serve=ServeSettings(model_uri=str(tmp_path / "no-model"), reload_seconds=0))
    arrived = threading.Event()
    with TestClient(app) as client:
        for _ in range(100):  # the loop makes a pass every second; no timing is asserted
            if len(crm.events) == 6:
                arrived.set()
                break
            assert client.get("/health").status_code == 200  # the event loop is free
            threading.Event().wait(0.1)
    assert arrived.is_set() and crm.bad_signatures == 0
    assert _store(tmp_path).outbox_counts() == {"delivered": 6}


README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
SECTION = README.split("## Webhooks", 1)[1].split("\n## ", 1)[0]


def test_the_readme_verify_snippet_accepts_a_signed_event_and_refuses_a_replay():
    code = SECTION.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)
    body = b'{"idempotency_key": "k1", "new_band": "SQL"}'
    fresh = webhooks.signed_headers(body, SECRET, "k1", int(time.time()))
    old = webhooks.signed_headers(body, SECRET, "k1", int(time.time()) - 3600)
    assert namespace["verify"](body, fresh, SECRET)
    assert not namespace["verify"](body + b" ", fresh, SECRET)
    assert not namespace["verify"](body, old, SECRET)


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("openssl")), reason="no curl/openssl"
)
def test_the_readme_curl_example_sends_an_event_the_receiver_accepts(receivers):
    crm = receivers()
    script = SECTION.split("```sh\n", 1)[1].split("```", 1)[0]
    script = re.sub(r"^RECEIVER=.*$", f"RECEIVER={crm.url}", script, flags=re.MULTILINE)
    env = {"PATH": os.environ["PATH"], "LEADML_WEBHOOK_SECRET": SECRET}
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "200", done.stderr
    assert crm.bad_signatures == 0 and crm.events["test-1"]["new_band"] == "SQL"
