"""The write-behind recorder: queued scores reach the store in batches, an outage costs
nothing but a metric and a log line, and what was queued is written when the store is back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from leadml.recorder import Recorder, StoreUnavailable, records
from leadml.scoring import Scored
from leadml.store import ScoreStore, fingerprint

FEATURES = ["visits_7d", "seniority"]


def scored(*ids: str | None, p: float = 0.3, band: str = "MQL") -> Scored:
    n = len(ids)
    out = {
        "probability": np.full(n, p),
        "score": np.full(n, int(p * 100)),
        "band": np.array([band] * n, dtype=object),
        "fit": np.array(["B"] * n, dtype=object),
        "pql": np.array([False] * n, dtype=object),
    }
    reasons = {
        "positive": [{"field": "Seniority", "value": "VP", "points": 4.2}],
        "negative": [{"field": "Industry", "value": "Retail", "points": -1.5}],
    }
    X = np.array([[3.0 + k, 0.123456] for k in range(n)])
    return Scored("leadml", "7", datetime.now(UTC), list(ids), FEATURES, X, out, [reasons] * n)


class Metrics:
    def __init__(self) -> None:
        self.queued, self.recorded, self.lost, self.up = [], 0, {}, []

    def scores_queued(self, n: int) -> None:
        self.queued.append(n)

    def scores_recorded(self, n: int) -> None:
        self.recorded += n

    def scores_not_recorded(self, reason: str, n: int) -> None:
        self.lost[reason] = self.lost.get(reason, 0) + n

    def store_up(self, up: bool) -> None:
        self.up.append(up)


class FlakyStore:
    """A store whose writes fail until `fixed`."""

    def __init__(self, path: Path) -> None:
        self.real = ScoreStore(f"sqlite:///{path}")
        self.engine = self.real.engine
        self.fixed = False
        self.attempts = 0

    def record(self, rows, webhook_urls=()):
        self.attempts += 1
        if not self.fixed:
            raise OSError(28, "No space left on device")
        return self.real.record(rows, webhook_urls)


def test_records_keep_ids_scores_grades_reason_points_and_a_fingerprint():
    rows = records(scored("L-1", None, "jane.doe@example.com", "L-2"))
    # no id of its own (a flat lead without row_id), or an id that is personal data: not kept
    assert [r.lead_id for r in rows] == ["L-1", "L-2"]
    r = rows[0]
    assert (r.model_name, r.model_version, r.score, r.band) == ("leadml", "7", 30, "MQL")
    assert (r.fit, r.pql, r.grid) == ("B", False, None)
    assert r.reasons == (("Seniority", 4.2), ("Industry", -1.5))
    assert dict(r.fingerprint) == {"visits_7d": 3.0, "seniority": 0.123}  # rounded
    assert r.fingerprint == fingerprint({"visits_7d": 3.0, "seniority": 0.123456})


def test_a_missing_feature_is_left_out_of_the_fingerprint():
    lead = scored("L-1")
    lead.X[0, 1] = np.nan
    (r,) = records(lead)
    assert r.fingerprint == (("visits_7d", 3.0),)


def test_queued_scores_are_written_in_batches(tmp_path):
    metrics = Metrics()
    recorder = Recorder(lambda: ScoreStore(f"sqlite:///{tmp_path / 's.db'}"), metrics=metrics)
    recorder.start()
    for k in range(5):
        recorder.keep(scored(f"L-{k}", f"M-{k}"))
    assert recorder.flush()
    store = recorder.store()
    assert [r.lead_id for r in store.history("L-3")] == ["L-3"]
    assert metrics.recorded == 10 and recorder.recorded == 10
    recorder.close()


def test_an_outage_keeps_the_queue_and_writes_it_when_the_store_is_back(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "leadml.recorder")
    flaky = FlakyStore(tmp_path / "s.db")
    metrics = Metrics()
    recorder = Recorder(lambda: flaky, metrics=metrics, backoff=(0.01, 0.05))
    recorder.start()
    for k in range(3):
        recorder.keep(scored(f"L-{k}"))
        assert not recorder.flush(timeout=5)  # the write failed: still queued
    assert flaky.attempts >= 3 and recorder.queued == 3
    assert metrics.up[-1] is False and metrics.queued[-1] == 3
    assert flaky.real.history("L-0") == []
    # one line for the outage, not one per try or per row
    assert caplog.text.count("score store unavailable") == 1
    assert "No space left on device" in caplog.text
    flaky.fixed = True
    assert recorder.flush(timeout=5)
    assert [len(flaky.real.history(f"L-{k}")) for k in range(3)] == [1, 1, 1]
    assert metrics.up[-1] is True and metrics.recorded == 3 and recorder.queued == 0
    assert "score store back" in caplog.text
    recorder.close()


def test_a_store_that_cannot_be_opened_is_opened_once_it_can(tmp_path):
    folder = tmp_path / "not-yet"  # SQLite cannot create a file in a missing folder
    recorder = Recorder(lambda: ScoreStore(f"sqlite:///{folder / 's.db'}"), backoff=(0.01, 0.05))
    recorder.start()
    recorder.keep(scored("L-1"))
    assert not recorder.flush(timeout=5)
    with pytest.raises(StoreUnavailable, match="OperationalError"):
        recorder.store()
    folder.mkdir()
    assert recorder.flush(timeout=5)
    assert recorder.store().latest("L-1").score == 30
    recorder.close()


def test_beyond_the_bound_scores_are_dropped_and_counted(tmp_path):
    flaky = FlakyStore(tmp_path / "s.db")
    metrics = Metrics()
    recorder = Recorder(lambda: flaky, metrics=metrics, capacity=4, backoff=(5.0, 5.0))
    for k in range(3):  # not started: nothing is written, the queue fills
        recorder.keep(scored(f"L-{k}", f"M-{k}"))
    assert recorder.queued == 4 and recorder.lost == 2
    assert metrics.lost == {"queue_full": 2}


def test_close_writes_what_is_queued(tmp_path):
    path = tmp_path / "s.db"
    recorder = Recorder(lambda: ScoreStore(f"sqlite:///{path}"), linger=60.0)
    recorder.start()
    recorder.keep(scored("L-1"))
    recorder.close()
    assert ScoreStore(f"sqlite:///{path}").latest("L-1") is not None


def test_close_with_the_store_down_gives_up_and_counts(tmp_path, caplog):
    flaky = FlakyStore(tmp_path / "s.db")
    metrics = Metrics()
    recorder = Recorder(lambda: flaky, metrics=metrics, linger=60.0)
    recorder.start()
    recorder.keep(scored("L-1", "L-2"))
    recorder.close(timeout=10)
    assert not recorder.thread.is_alive()
    assert metrics.lost == {"store_down_at_shutdown": 2}
    assert "2 scores not recorded" in caplog.text


def test_webhook_urls_are_passed_to_the_store(tmp_path):
    store = ScoreStore(f"sqlite:///{tmp_path / 's.db'}")
    recorder = Recorder(lambda: store, webhook_urls=("http://crm.example/hook",))
    recorder.start()
    recorder.keep(scored("L-1", band="MQL"))
    recorder.flush()
    recorder.keep(scored("L-1", p=0.8, band="SQL"))
    recorder.flush()
    (entry,) = store.outbox_entries()
    assert entry.url == "http://crm.example/hook" and '"new_band": "SQL"' in entry.body
    recorder.close()


def test_passes_are_joined_each_lead_keeping_its_own_time_and_model():
    first, second = scored("L-1", p=0.2), scored("L-2", "L-3", p=0.6, band="SQL")
    other = Scored(**{**vars(scored("L-4")), "model_version": "8"})
    rows = records(first, second, other)
    assert [(r.lead_id, r.band, r.model_version) for r in rows] == [
        ("L-1", "MQL", "7"),
        ("L-2", "SQL", "7"),
        ("L-3", "SQL", "7"),
        ("L-4", "MQL", "8"),
    ]
    assert [r.scored_at for r in rows[:2]] == [first.scored_at, second.scored_at]
    assert rows[2].fingerprint == (("seniority", 0.123), ("visits_7d", 4.0))
    assert [r.as_of for r in rows] == [None] * 4  # live passes: the store keeps scored_at


def test_joined_passes_keep_each_pass_its_own_as_of():
    day = datetime(2026, 6, 30, tzinfo=UTC)
    backfill = Scored(**{**vars(scored("L-1", "L-2")), "as_of": day})
    rows = records(backfill, scored("L-3"))
    assert [r.as_of for r in rows] == [day, day, None]
