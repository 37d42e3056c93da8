"""The Dask engine on a real 2-worker local cluster: same features, scores and rejects as the
in-memory engine on the same data, training quality within a small tolerance, the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from leadml import dask_engine, dataset, errors, features, score, synth, tracking
from leadml.cli import main
from leadml.config import Settings, TrainConfig
from leadml.dask_engine import DaskEngine
from leadml.errors import EngineError
from leadml.train import fit, train
from tests.conftest import make_flat

pytestmark = pytest.mark.slow

CONFIG = TrainConfig.model_validate({"model": {"baseline": False, "max_rounds": 500}})


@pytest.fixture(scope="module")
def engine():
    with DaskEngine.connect(workers=2) as eng:
        yield eng


@pytest.fixture(scope="module")
def parts_dir(tmp_path_factory, crm_small):
    """The small CRM data as a warehouse would export it: leads in one Parquet file of
    several row groups, events in three Parquet parts of several row groups each, with bad
    rows in later row groups (so reject row numbers must be the file's, not the piece's)."""
    out = tmp_path_factory.mktemp("parts") / "crm"
    synth.write_crm(crm_small, out, "parquet", parts=3)
    leads = pd.read_parquet(out / "leads.parquet")
    leads["created_at"] = leads["created_at"].astype(str)
    leads.loc[1234, "created_at"] = "not a date"
    leads.loc[2345, "lead_id"] = None  # a blank id: the id column reads back as floats
    leads.to_parquet(out / "leads.parquet", index=False, row_group_size=400)
    for i, path in enumerate(sorted((out / "events").glob("*.parquet"))):
        events = pd.read_parquet(path)
        events["event_type"] = events["event_type"].astype(str)
        events.loc[len(events) - 3, "event_type"] = "telepathy"
        events.loc[len(events) - 2, "lead_id"] = 999 + i  # no such lead
        events.to_parquet(path, index=False, row_group_size=4000)
    return out


def test_pieces_follow_row_groups(parts_dir):
    pieces = dataset.pieces(parts_dir / "leads.parquet", split_row_groups=True)
    assert len(pieces) == 8 and [p.first_row for p in pieces[:3]] == [0, 400, 800]
    assert sum(dataset.read_piece(p).rows for p in pieces) == 3000


def test_same_features_and_rejects_as_in_memory(engine, parts_dir, crm_model):
    spec = crm_model.scorer.spec
    cut = "2026-05-01"
    local = dataset.load_crm(parts_dir, require_outcome=False)
    feats = features.build_features(local.leads, local.events, spec, as_of=pd.Timestamp(cut))
    want = feats.X.set_axis(feats.ids).sort_index()
    got = engine.features(parts_dir, spec, cut).compute().set_index("lead_id").sort_index()
    assert engine.features(parts_dir, spec, cut).npartitions >= 4  # really split up
    assert list(got.columns) == spec.feature_names and len(got) == len(want) == 2998
    np.testing.assert_array_equal(got.index.to_numpy(), want.index.to_numpy())
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())  # bit for bit, NaN included
    tables = engine.read_crm(parts_dir, None, require_outcome=False)
    pd.testing.assert_frame_equal(tables.rejects.frame, local.rejects.frame)
    rejects = tables.rejects.frame
    assert {"missing lead id", "not a date"} <= set(rejects["reason"])
    assert rejects["reason"].str.startswith("unknown event type").sum() == 3
    counts = tables.counts()
    assert (counts["leads"].read, counts["leads"].rejected_rows) == (3000, 2)
    assert counts == local.counts()


# the engagement grade is a label ("1" .. "4"): Parquet keeps it as text, CSV reading must too
TEXT = {"lead_id": str, "engagement": str}


@pytest.mark.parametrize("out_name", ["scores.parquet", "scores.csv"])
def test_same_scores_and_every_row_scored_or_rejected(
    engine, parts_dir, crm_model, tmp_path, out_name
):
    settings = Settings.from_env(tmp_path)
    model = crm_model.uri
    want = score.score_file(parts_dir, tmp_path / "local.csv", settings, model)
    got = score.score_file(parts_dir, tmp_path / out_name, settings, model, engine=engine)
    assert (got.rows_in, got.scored, got.rejected, got.as_of, got.bands) == (
        want.rows_in,
        want.scored,
        want.rejected,
        want.as_of,
        want.bands,
    )
    assert got.scored + got.rejected == 3000
    if out_name.endswith(".parquet"):  # a folder of Parquet parts, one per partition
        assert len(list((tmp_path / out_name).glob("part-*.parquet"))) >= 4
        frame = pd.read_parquet(tmp_path / out_name)
    else:
        frame = pd.read_csv(tmp_path / out_name, dtype=TEXT)
    assert not (tmp_path / (out_name + ".partial")).exists()
    local = pd.read_csv(tmp_path / "local.csv", dtype=TEXT)
    local = local.set_index("lead_id").sort_index()
    frame = frame.set_index("lead_id").sort_index()
    pd.testing.assert_frame_equal(frame, local, check_dtype=False)
    rejects = pd.read_csv(got.rejects_path)
    pd.testing.assert_frame_equal(rejects, pd.read_csv(want.rejects_path))
    lead_rows = rejects[rejects["file"] == "leads.parquet"]
    assert set(lead_rows["row"]) == {1235, 2346}  # the file's own row numbers (1 = first)


def test_training_on_the_cluster_matches_in_memory_quality(engine, parts_dir, home):
    local, _ = fit(parts_dir, CONFIG)
    settings = Settings.from_env()
    result = train(parts_dir, CONFIG, settings, engine=engine)
    d, l_ = result.data_summary, local.data_summary
    for key in ("rows", "leads", "events", "cutoffs", "slices", "conversion_rate", "hash"):
        assert d[key] == l_[key], key
    assert result.scorer.spec.categories == local.scorer.spec.categories
    assert abs(result.metrics["roc_auc"] - local.metrics["roc_auc"]) < 0.015
    assert abs(result.metrics["log_loss"] - local.metrics["log_loss"]) < 0.01
    # the same test rows in another order: sums agree to rounding
    assert (
        result.bayes == pytest.approx(local.bayes, rel=1e-12) and result.metrics["roc_auc"] > 0.75
    )
    assert 0 < d["best_iteration"] <= CONFIG.model.max_rounds
    # registered and promoted like any model; the registry copy scores like the result
    assert result.version == "1" and result.promoted
    loaded = tracking.load_scorer(settings, "models:/leadml@champion")
    data = dataset.load_crm(parts_dir, require_outcome=False)
    a, _ = loaded.score_leads(data.leads, data.events, as_of=pd.Timestamp("2026-06-01"))
    b, _ = result.scorer.score_leads(data.leads, data.events, as_of=pd.Timestamp("2026-06-01"))
    np.testing.assert_allclose(a["probability"], b["probability"])
    # grades learned from client samples of the slices: the same kinds of words as in memory
    g = result.scorer.grades
    assert g.fit and g.engagement and g.usage and g.temperature and g.stage
    assert set(a["grid"]) <= {f + e for f in "ABCD" for e in "1234"} and a["grid"].nunique() > 8
    assert (a["grid"] == b["grid"]).all()


def test_best_rounds_is_early_stopping_after_the_fact():
    import lightgbm as lgb

    from leadml.boosting import best_rounds
    from leadml.calibration import log_loss

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 0] + rng.normal(size=3000) > 0).astype(float)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "learning_rate": 0.2},
        lgb.Dataset(X[:2000], y[:2000]),
        200,
    )
    losses = [log_loss(y[2000:], booster.predict(X[2000:], num_iteration=k)) for k in range(1, 201)]
    assert best_rounds(booster, X[2000:], y[2000:]) == int(np.argmin(losses)) + 1 < 200


def test_too_few_cutoffs_say_use_the_local_engine(engine, parts_dir, flat_model, tmp_path):
    few = CONFIG.with_changes({"label": {"snapshots": 3}})
    with pytest.raises(errors.ContractError, match="needs 4 or more"):
        fit(parts_dir, few, engine=engine)
    with pytest.raises(errors.ContractError, match="trained on a flat export"):
        score.score_file(
            parts_dir,
            tmp_path / "s.csv",
            Settings.from_env(tmp_path),
            flat_model.uri,
            engine=engine,
        )


@pytest.fixture(scope="module")
def small_flat(tmp_path_factory):
    """A small flat export to score, with two numbers no feature can use (rejected rows)."""
    new = make_flat(300, seed=9).drop(columns=["won"]).astype(object)
    new.loc[3, "web_visits"] = "lots"
    new.loc[7, "minutes_on_site"] = "-inf"
    path = tmp_path_factory.mktemp("flat_new") / "new_leads.csv"
    new.to_csv(path, sep=";", index=False)
    return path


@pytest.mark.parametrize("kind", ["crm", "flat"])
def test_both_engines_score_both_kinds_identically(
    engine, crm_dir, crm_model, small_flat, flat_model, tmp_path, kind
):
    data, model = (crm_dir, crm_model) if kind == "crm" else (small_flat, flat_model)
    settings, options = Settings.from_env(tmp_path), dataset.ReadOptions(sep=";")
    options = options if kind == "flat" else dataset.ReadOptions()
    want = score.score_file(data, tmp_path / "local.csv", settings, model.uri, options)
    got = score.score_file(data, tmp_path / "dask.csv", settings, model.uri, options, engine=engine)
    assert (got.rows_in, got.scored, got.rejected, got.as_of, got.bands, got.tables) == (
        want.rows_in,
        want.scored,
        want.rejected,
        want.as_of,
        want.bands,
        want.tables,
    )
    id_col = model.scorer.spec.id_column
    local = pd.read_csv(tmp_path / "local.csv", dtype={id_col: str})
    dask = pd.read_csv(tmp_path / "dask.csv", dtype={id_col: str})
    if kind == "flat":  # in the file's order; CRM partitions are by a hash of the id
        assert dask[id_col].tolist() == local[id_col].tolist()
    local, dask = (
        local.sort_values(id_col, ignore_index=True),
        dask.sort_values(id_col, ignore_index=True),
    )
    assert dask[id_col].tolist() == local[id_col].tolist()  # every lead scored by both
    dp = np.abs(dask["probability"].to_numpy() - local["probability"].to_numpy())
    assert dp.max() <= 1e-9 and (dask["band"] == local["band"]).all()
    grades = ["fit", "engagement", "grid", "temperature", "stage", "pql"]
    pd.testing.assert_frame_equal(dask[grades], local[grades])  # the same words too
    assert local["grid"].notna().all()
    pd.testing.assert_frame_equal(pd.read_csv(got.rejects_path), pd.read_csv(want.rejects_path))
    if kind == "flat":
        assert got.rejected == 2 and got.as_of is None


def test_cli_scores_a_flat_export_on_the_cluster(engine, small_flat, flat_model, home, capsys):
    out = home / "out" / "scores.csv"
    argv = ["-q", "score", "--data", str(small_flat), "--out", str(out), "--sep", ";"]
    address = engine.client.scheduler.address
    argv += ["--model", flat_model.uri, "--engine", "dask", "--scheduler", address]
    assert main(argv) == 0
    assert "scored 298 of 300 leads" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 298


def test_cli_keeps_the_clusters_scores_in_the_store(
    engine, parts_dir, crm_model, home, tmp_path, capsys
):
    """Scores made on the workers reach the score store like the in-memory engine's: every
    scored lead, the output's score and band, with reasons and features; nothing left behind."""
    import os

    from leadml.store import ScoreStore

    address = engine.client.scheduler.address
    out = home / "out" / "scores.csv"
    argv = ["-q", "score", "--data", str(parts_dir), "--out", str(out), "--model", crm_model.uri]
    assert main([*argv, "--engine", "dask", "--scheduler", address, "--reasons"]) == 0
    assert "2,998 scores kept, with their reasons" in capsys.readouterr().out
    scores = pd.read_csv(out, dtype={"lead_id": str}).set_index("lead_id")
    store = ScoreStore(os.environ["LEADML_STORE_URL"])
    for lead in scores.index[::500]:
        (entry,) = store.history(lead)
        assert (entry.score, entry.band) == (scores.loc[lead, "score"], scores.loc[lead, "band"])
        assert entry.reasons and entry.fingerprint
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from scores").scalar() == 2998
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.csv", "scores.rejects.csv"]


def test_cli_scores_on_a_given_scheduler(engine, parts_dir, crm_model, home, capsys):
    address = engine.client.scheduler.address
    out = home / "out" / "scores.csv"
    argv = ["-q", "score", "--data", str(parts_dir), "--out", str(out), "--model", crm_model.uri]
    assert main([*argv, "--engine", "dask", "--scheduler", address]) == 0
    text = capsys.readouterr().out
    assert f"dask: 2 worker(s) on {address}" in text and "scored 2,998 of 3,000 leads" in text
    assert len(pd.read_csv(out)) == 2998
    assert main([*argv, "--scheduler", address]) == 2
    assert "need --engine dask" in capsys.readouterr().err


def test_unreachable_scheduler_is_a_clear_error(monkeypatch, capsys, parts_dir, home):
    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT", "1s")
    code = main(
        [
            "-q",
            "score",
            "--data",
            str(parts_dir),
            "--out",
            str(home / "s.csv"),
            "--engine",
            "dask",
            "--scheduler",
            "tcp://127.0.0.1:9",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    with pytest.raises(EngineError), DaskEngine.connect("tcp://127.0.0.1:9"):
        pass


def test_synth_writes_event_parts(tmp_path, crm_small):
    paths = synth.write_crm(crm_small, tmp_path / "d", "parquet", parts=4)
    assert sorted(p.name for p in paths["events"].iterdir())[0] == "part-00000.parquet"
    assert len(pd.read_parquet(paths["events"])) == len(crm_small.events)
    synth.write_crm(crm_small, tmp_path / "d", "csv")  # back to one file: the folder goes
    assert dataset.table_source(tmp_path / "d", "events").name == "events.csv"
    shutil.rmtree(tmp_path / "d")


@pytest.fixture(scope="module")
def flat_export(tmp_path_factory):
    """A flat export to train on, with a sign-up date (for the time split), a target that is
    not yes/no (rejected when read) and a number no feature can use (rejected by the features)."""
    frame = make_flat(3000, seed=5).astype(object)
    days = np.random.default_rng(5).integers(0, 400, len(frame))
    frame["signed_up"] = (pd.Timestamp("2025-01-01") + pd.to_timedelta(days, "D")).strftime(
        "%Y-%m-%d"
    )
    frame.loc[11, "won"] = "maybe"
    frame.loc[12, "web_visits"] = "lots"
    path = tmp_path_factory.mktemp("flat_train") / "export.csv"
    frame.to_csv(path, sep=";", index=False)
    return path


FLAT = {
    "flat": {"target": "won", "id_column": "customer_ref", "sep": ";"},
    "model": {"baseline": True},  # learns from the train and valid rows: the same on both
}
FLAT_SPLITS = {
    "cross-fitted": {},
    "fixed slices": {"split": {"crossfit_folds": 0}},
    "by time": {"split": {"date_column": "signed_up"}},
}


@pytest.mark.parametrize("how", FLAT_SPLITS)
def test_flat_training_on_the_cluster_matches_in_memory(engine, flat_export, tmp_path, how):
    config = CONFIG.with_changes(FLAT).with_changes(FLAT_SPLITS[how])
    local, local_files = fit(flat_export, config)
    result, files = fit(flat_export, config, engine=engine)
    d, l_ = result.data_summary, local.data_summary
    for key in ("rows", "conversion_rate", "hash", "tables", "rejected_rows", "split", "slices"):
        assert d[key] == l_[key], key
    assert d["crossfit_folds"] == l_["crossfit_folds"] == (5 if how == "cross-fitted" else 0)
    assert d["split"] == ("time" if how == "by time" else "stratified random")
    assert d["tables"]["leads"]["rejected"] == 2
    pd.testing.assert_frame_equal(files.rejects, local_files.rejects)
    assert set(files.rejects["reason"]) == set(local_files.rejects["reason"])
    assert result.scorer.spec == local.scorer.spec
    # the same leads in every slice: the same test leads, and a baseline that learns from the
    # same train and valid rows scores them alike
    np.testing.assert_array_equal(files.y_test, local_files.y_test)
    pd.testing.assert_frame_equal(files.test.example(50), local_files.test.example(50))
    assert result.baseline == pytest.approx(local.baseline, rel=1e-12, abs=1e-12)
    # the same rule as CRM training on the cluster: quality within a small tolerance
    assert abs(result.metrics["roc_auc"] - local.metrics["roc_auc"]) < 0.015
    assert abs(result.metrics["log_loss"] - local.metrics["log_loss"]) < 0.01
    assert 0 < d["best_iteration"] <= CONFIG.model.max_rounds

    # the model trained on the cluster scores the file alike on both engines
    uri = str(result.scorer.save(tmp_path / "model"))
    settings, options = Settings.from_env(tmp_path), dataset.ReadOptions(sep=";")
    want = score.score_file(flat_export, tmp_path / "local.csv", settings, uri, options)
    got = score.score_file(
        flat_export, tmp_path / "dask.csv", settings, uri, options, engine=engine
    )
    assert (got.rows_in, got.scored, got.rejected, got.bands) == (
        want.rows_in,
        want.scored,
        want.rejected,
        want.bands,
    )
    a = pd.read_csv(tmp_path / "local.csv", dtype={"customer_ref": str})
    b = pd.read_csv(tmp_path / "dask.csv", dtype={"customer_ref": str})
    assert b["customer_ref"].tolist() == a["customer_ref"].tolist() and len(a) == 2999
    dp = np.abs(b["probability"].to_numpy() - a["probability"].to_numpy())
    assert dp.max() <= 1e-9 and (a["band"] == b["band"]).all()


def test_cli_trains_a_flat_export_on_the_cluster(engine, flat_export, home, capsys):
    address = engine.client.scheduler.address
    argv = ["-q", "train", "--data", str(flat_export), "--target", "won", "--sep", ";"]
    argv += ["--id", "customer_ref", "--engine", "dask", "--scheduler", address]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "split stratified random" in out and "2,998 used" in out
    assert "use --engine local" not in out + err
    assert "registered leadml v1" in out
