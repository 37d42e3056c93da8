"""The score store on SQLite in a temp folder and on a real PostgreSQL server (a throwaway
one, see tests/pg.py; skipped with the reason where none is installed): migrations, write,
read, history order, time zones, trend, changes, prune, the outbox."""

import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from leadml import store
from leadml.config import Environment, StoreSettings
from leadml.store import ScoreRecord, ScoreStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    """An empty store: the default SQLite file under a temp home, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return StoreSettings.from_env(tmp_path, Environment()).store_url
    return request.getfixturevalue("postgresql_url")


def _revision(scores: ScoreStore) -> str | None:
    with scores.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


HEAD = ScriptDirectory.from_config(store.alembic_config()).get_current_head()


def test_a_new_database_is_migrated_to_head_and_matches_the_tables_of_store_py(url):
    scores = ScoreStore(url)
    assert HEAD is not None and _revision(scores) == HEAD
    with scores.engine.connect() as conn:
        # what autogenerate would write next: nothing, or store.py and the revisions differ
        assert compare_metadata(MigrationContext.configure(conn), store.metadata) == []
        names = set(sa.inspect(conn).get_table_names())
    assert names == {"scores", "outbox", "alembic_version"}


def test_opening_a_store_again_keeps_its_scores_and_its_revision(url):
    ScoreStore(url).record([_score(0, 40)])
    again = ScoreStore(url)
    assert [r.score for r in again.history("L1")] == [40]
    with again.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [(HEAD,)]


def test_a_store_at_an_older_revision_is_upgraded_on_open(url):
    scores = ScoreStore(url)
    with scores.engine.begin() as conn:
        command.downgrade(store.alembic_config(conn), "base")  # as old as a store can be
    assert _revision(scores) is None
    with scores.engine.connect() as conn:
        assert not sa.inspect(conn).has_table("scores")
    reopened = ScoreStore(url)
    assert _revision(reopened) == HEAD
    reopened.record([_score(0, 40)])
    assert reopened.latest("L1").score == 40


def test_times_are_read_back_in_utc_whatever_zone_they_were_given_in(url):
    scores = ScoreStore(url)
    auckland_noon = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=13)))
    given = ScoreRecord(**{**_score(0, 40).__dict__, "scored_at": auckland_noon})
    scores.record([given], ("http://a.example/hook",))
    scores.record([_score(1, 80)], ("http://a.example/hook",))
    newest = scores.history("L1")[0]  # the Auckland one: March comes after January 2nd
    assert newest.scored_at == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    assert newest.scored_at.utcoffset() == timedelta(0)
    (entry,) = scores.due()
    assert entry.created_at.utcoffset() == entry.next_at.utcoffset() == timedelta(0)


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


def test_history_is_newest_first_and_survives_reopening(url):
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


def test_prune_deletes_only_scores_older_than_the_retention(url):
    scores = ScoreStore(url)
    scores.record([_score(0, 40), _score(10, 60)])
    assert scores.prune(days=5, now=T0 + timedelta(days=12)) == 1
    assert [r.score for r in scores.history("L1")] == [60]


def test_grades_are_kept_and_read_back(url):
    scores = ScoreStore(url)
    graded = ScoreRecord(**{**_score(0, 80).__dict__, "fit": "A", "engagement": "1", "grid": "A1"})
    scores.record([graded, _score(1, 40)])
    newest, older = scores.history("L1")
    assert (older.grid, older.pql) == ("A1", None)
    assert newest.grid is None  # a model without grades stores nulls


def test_a_band_change_puts_one_event_per_receiver_in_the_outbox(url):
    scores = ScoreStore(url)
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


def test_outbox_retries_give_up_and_replay(url):
    scores = ScoreStore(url)
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


def test_an_in_memory_sqlite_store_is_migrated_on_its_own_connection():
    scores = ScoreStore("sqlite://")  # one connection's database: migrated there, not elsewhere
    scores.record([_score(0, 40)])
    assert scores.latest("L1").score == 40 and _revision(scores) == HEAD


# ---- as_of and the monitor's readers (issue 17) ---------------------------------------------


def _as_of(day: int, score: int, lead: str = "L1", model: str = "leads", **extra) -> ScoreRecord:
    """A batch score made now (day 30) describing day `day`."""
    fields = _score(30, score, lead=lead).__dict__ | {"model_name": model, "as_of": _day(day)}
    return ScoreRecord(**fields | extra)


def _day(day: int) -> datetime:
    return T0 + timedelta(days=day)


def test_a_store_of_revision_0001_gets_as_of_from_scored_at_when_upgraded(url):
    scores = ScoreStore(url)
    with scores.engine.begin() as conn:
        command.downgrade(store.alembic_config(conn), "0001")
        assert "as_of" not in {c["name"] for c in sa.inspect(conn).get_columns("scores")}
        conn.execute(store.scores.insert(), [_row(_score(2, 40))])  # the columns 0001 has
    reopened = ScoreStore(url)
    assert _revision(reopened) == HEAD
    (kept,) = reopened.history("L1")
    assert kept.as_of == kept.scored_at == _day(2)
    with reopened.engine.connect() as conn:  # the column and its index, as store.py says
        assert compare_metadata(MigrationContext.configure(conn), store.metadata) == []
    assert list(reopened.scores_between(_day(2), _day(3))["id"]) == [1]


def _row(record: ScoreRecord) -> dict:
    """The row record() would write, without as_of: for a table of revision 0001."""
    same = ("lead_id", "scored_at", "model_name", "model_version", "probability", "score", "band")
    return {name: getattr(record, name) for name in same} | {
        "reasons": "[]",
        "fingerprint": json.dumps([list(x) for x in record.fingerprint]),
    }


def test_a_score_keeps_its_as_of_and_a_live_one_its_scored_at(url):
    scores = ScoreStore(url)
    auckland = timezone(timedelta(hours=13))
    scores.record([_as_of(3, 40, as_of=_day(3).astimezone(auckland))])  # given in any zone
    scores.record([_score(31, 50)])  # as /predict keeps it: no as_of
    live, batch = scores.history("L1")
    assert batch.as_of == _day(3) and batch.as_of.utcoffset() == timedelta(0)
    assert batch.scored_at == _day(30)
    assert live.as_of == live.scored_at == _day(31)


def test_scores_between_takes_since_and_leaves_out_until(url, monkeypatch):
    scores = ScoreStore(url)
    scores.record([_as_of(day, 10 + day, lead=f"L{day}") for day in range(5)])

    def leads(since, until):
        return list(scores.scores_between(since, until)["lead_id"])

    assert leads(_day(1), _day(3)) == ["L1", "L2"]
    assert leads(None, _day(2)) == ["L0", "L1"]
    assert leads(_day(3), None) == ["L3", "L4"]
    assert leads(None, None) == [f"L{d}" for d in range(5)]
    auckland = timezone(timedelta(hours=13))  # the bounds are instants, whatever their zone
    assert leads(
        _day(1).astimezone(auckland), (_day(2) + timedelta(seconds=1)).astimezone(auckland)
    ) == ["L1", "L2"]
    assert leads(_day(4) + timedelta(microseconds=1), None) == []
    monkeypatch.setenv("TZ", "Pacific/Auckland")  # a bound without a zone is UTC, not local
    time.tzset()
    try:
        naive = (_day(4) + timedelta(hours=1)).replace(tzinfo=None)  # as local: 13 h earlier
        assert leads(naive - timedelta(hours=2), naive) == ["L4"]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_scores_between_filters_by_model_and_hands_back_typed_columns(url):
    scores = ScoreStore(url)
    scores.record(
        [
            _as_of(1, 80, lead="L1", grid="A1"),
            _as_of(1, 30, lead="L2", model="other"),
            _as_of(2, 55, lead="L3"),
        ]
    )
    frame = scores.scores_between(_day(0), _day(5), model_name="leads")
    assert list(frame.columns) == list(store.PERIOD_COLUMNS)
    assert list(frame["lead_id"]) == ["L1", "L3"]
    assert list(frame["score"]) == [80, 55]
    assert frame["grid"].iloc[0] == "A1" and pd.isna(frame["grid"].iloc[1])
    assert list(frame["as_of"]) == [_day(1), _day(2)]
    assert set(frame["scored_at"]) == {_day(30)}
    assert str(frame["as_of"].dtype) == str(frame["scored_at"].dtype) == "datetime64[us, UTC]"
    assert frame["id"].dtype == frame["score"].dtype == "int64"
    assert frame["probability"].dtype == "float64"
    assert frame["lead_id"].dtype == frame["band"].dtype == "str"
    assert list(frame["model_version"]) == ["3", "3"]
    empty = scores.scores_between(_day(3), _day(4), model_name="leads")
    assert empty.empty and empty.dtypes.equals(frame.dtypes)


def test_fingerprints_come_back_by_id_with_missing_features_left_out(url):
    scores = ScoreStore(url)
    partial = _as_of(1, 40, fingerprint=(("visits", 3.0),))  # "pages" was missing
    many = [_as_of(2, 50, lead=f"M{i}", fingerprint=(("visits", float(i)),)) for i in range(2000)]
    scores.record([_as_of(1, 60), partial, *many])
    ids = list(scores.scores_between(None, None)["id"])
    found = scores.fingerprints([*ids, 999_999])  # more than one IN list; an unknown id
    assert len(found) == 2002 and 999_999 not in found
    assert found[ids[0]] == {"pages": 2.0, "visits": 1.0}
    assert found[ids[1]] == {"visits": 3.0}
    assert found[ids[-1]] == {"visits": 1999.0}
    assert scores.fingerprints([]) == {}


@pytest.mark.slow
def test_batch_scores_describe_the_as_of_they_were_scored_at(home, crm_model, crm_dir, capsys):
    """`leadml score --as-of` (a backfill) keeps that day as each score's as_of; without it,
    the cut-off the run printed (the data's latest activity), not the moment it ran; `leadml
    history` shows it."""
    import os
    import re

    from leadml.cli import main

    argv = ["-q", "score", "--data", str(crm_dir), "--out", str(home / "s.csv")]
    assert main([*argv, "--model", crm_model.uri, "--as-of", "2026-05-31"]) == 0
    assert main([*argv, "--model", crm_model.uri]) == 0
    printed = re.findall(r"\(as of ([^)]+)\)", capsys.readouterr().out)
    default = pd.Timestamp(printed[-1], tz="UTC")
    assert default != pd.Timestamp("2026-05-31", tz="UTC")
    scored = len(pd.read_csv(home / "s.csv"))
    scores = ScoreStore(os.environ["LEADML_STORE_URL"])
    backfill = scores.scores_between(datetime(2026, 5, 31, tzinfo=UTC), default)
    assert len(backfill) == scored and set(backfill["as_of"]) == {
        pd.Timestamp("2026-05-31", tz="UTC")
    }
    assert (backfill["scored_at"] > pd.Timestamp.now(tz="UTC") - pd.Timedelta(minutes=10)).all()
    latest = scores.scores_between(default, None)
    assert len(latest) == scored and set(latest["as_of"]) == {default}
    assert main(["history", str(latest["lead_id"].iloc[0])]) == 0  # says which moment each is
    assert "(as of 2026-05-31 00:00:00)" in capsys.readouterr().out
