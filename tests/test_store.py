"""The score store on SQLite in a temp folder: write, read, history order, trend, changes, prune."""

import json
from datetime import UTC, datetime, timedelta

from leadml import store
from leadml.config import Environment, StoreSettings
from leadml.store import ScoreRecord, ScoreStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _url(home) -> str:
    return StoreSettings.from_env(home, Environment()).store_url


def _score(day: int, score: int, visits: float = 1.0, lead: str = "L1") -> ScoreRecord:
    return ScoreRecord(
        lead_id=lead,
        scored_at=T0 + timedelta(days=day),
        model_name="leads",
        model_version="3",
        probability=score / 100,
        score=score,
        band="SQL" if score >= 70 else "MQL",
        reasons=(("visits", visits * 2),),
        fingerprint=store.fingerprint({"visits": visits, "pages": 2.0}),
    )


def test_history_is_newest_first_and_survives_reopening(tmp_path):
    url = _url(tmp_path)
    ScoreStore(url).record([_score(0, 40), _score(2, 80), _score(1, 60), _score(0, 10, lead="L2")])
    history = ScoreStore(url).history("L1")
    assert [r.score for r in history] == [80, 60, 40]
    assert history[0].scored_at == T0 + timedelta(days=2)
    assert ScoreStore(url).latest("L1") == history[0]
    assert ScoreStore(url).latest("nobody") is None


def test_trend_names_the_direction_and_slope():
    rising = [_score(2, 80), _score(1, 60), _score(0, 40)]
    assert store.trend(rising) == ("rising", 20.0)
    assert store.trend(list(reversed(rising)))[0] == "falling"
    assert store.trend([_score(0, 40), _score(1, 40)]) == ("flat", 0.0)
    assert store.trend([_score(0, 40)]) == ("flat", 0.0)


def test_changes_name_the_features_and_reasons_that_moved():
    words = store.changes(_score(1, 60, visits=3.0), _score(0, 40, visits=1.0))
    assert words == [
        "feature visits changed from 1.0 to 3.0",
        "reason visits moved from +2 to +6 points",
    ]
    assert store.changes(_score(1, 60), _score(0, 60)) == []


def test_prune_deletes_only_scores_older_than_the_retention(tmp_path):
    scores = ScoreStore(_url(tmp_path))
    scores.record([_score(0, 40), _score(10, 60)])
    assert scores.prune(days=5, now=T0 + timedelta(days=12)) == 1
    assert [r.score for r in scores.history("L1")] == [60]


def test_grades_are_kept_and_read_back(tmp_path):
    scores = ScoreStore(_url(tmp_path))
    graded = ScoreRecord(**{**_score(0, 80).__dict__, "fit": "A", "engagement": "1", "grid": "A1"})
    scores.record([graded, _score(1, 40)])
    newest, older = scores.history("L1")
    assert (older.grid, older.pql) == ("A1", None)
    assert newest.grid is None  # a model without grades stores nulls


def test_a_band_change_puts_one_event_per_receiver_in_the_outbox(tmp_path):
    scores = ScoreStore(_url(tmp_path))
    urls = ("http://a.example/hook", "http://b.example/hook")
    assert scores.record([_score(0, 40)], urls) == 0  # a first score changes no band
    assert scores.record([_score(1, 50), _score(2, 80), _score(3, 85)], urls) == 1  # MQL -> SQL
    assert scores.record([_score(4, 30)]) == 0  # no receivers: nothing queued
    due = scores.due()
    assert sorted(e.url for e in due) == list(urls)
    assert len({e.event_id for e in due}) == 1  # the same idempotency key for both receivers
    event = json.loads(due[0].body)
    assert (event["lead_id"], event["old_band"], event["new_band"], event["score"]) == (
        "L1",
        "MQL",
        "SQL",
        80,
    )


def test_outbox_retries_give_up_and_replay(tmp_path):
    scores = ScoreStore(_url(tmp_path))
    scores.record([_score(0, 40), _score(1, 80)], ("http://a.example/hook",))
    (entry,) = scores.due()
    later = datetime.now(UTC) + timedelta(minutes=5)
    scores.retry(entry.id, later, "HTTP 500")
    assert scores.due() == []  # not due before its time
    (again,) = scores.due(now=later)
    assert (again.attempts, again.last_error) == (1, "HTTP 500")
    scores.retry(entry.id, later, "HTTP 500", give_up=True)
    assert [e.status for e in scores.outbox_entries()] == ["failed"]
    assert scores.replay() == 1
    scores.delivered(entry.id)
    (done,) = scores.outbox_entries("delivered")
    assert done.attempts == 3 and done.delivered_at is not None and scores.due() == []
