"""The score store on SQLite in a temp folder: write, read, history order, trend, changes, prune."""

from datetime import UTC, datetime, timedelta

from leadml import store
from leadml.store import ScoreRecord, ScoreStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


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
    url = store.default_url(tmp_path)
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
    scores = ScoreStore(store.default_url(tmp_path))
    scores.record([_score(0, 40), _score(10, 60)])
    assert scores.prune(days=5, now=T0 + timedelta(days=12)) == 1
    assert [r.score for r in scores.history("L1")] == [60]
