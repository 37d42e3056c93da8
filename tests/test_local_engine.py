"""The in-memory engine on the small synthetic CRM data with three bad rows added: what
`prepare` hands on (slices, raw scores, test leads), and `score_file` (every row scored or
rejected, the rejects file beside the scores, no personal data); and its steps before boosting
(`training_rows`), which the Dask engine shares for flat exports."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from leadml import accounting, dataset
from leadml.config import Settings, TrainConfig
from leadml.grades import LABELS
from leadml.local_engine import LocalEngine, LocalTestLeads, read_options, training_rows
from leadml.progress import Stages
from tests.conftest import make_flat

CONFIG = TrainConfig.model_validate({"model": {"baseline": False, "max_rounds": 50}})
PERSONAL = ["first_name", "last_name", "email", "phone"]


def _with_bad_rows(crm_dir, folder):
    """A copy of the sample with a duplicate lead, an unknown event type and an event of no lead."""
    shutil.copytree(crm_dir, folder)
    leads = pd.read_csv(folder / "leads.csv", dtype=str, keep_default_na=False)
    pd.concat([leads, leads.iloc[[0]]]).to_csv(folder / "leads.csv", index=False)
    events = pd.read_csv(folder / "events.csv", dtype=str, keep_default_na=False)
    bad = events.iloc[[0, 1]].copy()
    bad["event_type"] = ["fax_sent", "email_open"]
    bad["lead_id"] = [bad["lead_id"].iloc[0], "999999999"]
    pd.concat([events, bad]).to_csv(folder / "events.csv", index=False)
    return folder, len(leads), len(events)


@pytest.fixture(scope="module")
def bad_rows(crm_dir, tmp_path_factory):
    return _with_bad_rows(crm_dir, tmp_path_factory.mktemp("engine") / "crm")


@pytest.fixture(scope="module")
def prepared(bad_rows):
    folder, _, _ = bad_rows
    return LocalEngine().prepare(folder, CONFIG, Stages(6, False), False)


def test_read_options_follow_the_config():
    cfg = TrainConfig.model_validate(
        {
            "flat": {"sep": ";", "missing_values": ["Select"]},
            "input": {"date_format": "day-first", "max_reject_share": 0.2},
        }
    )
    opts = read_options(cfg)
    assert (opts.sep, opts.date_format, opts.max_reject_share) == (";", "day-first", 0.2)
    assert opts.missing_values == ("Select",)


def test_prepare_counts_every_row_read_used_or_rejected(prepared, bad_rows):
    prep, _ = prepared
    _, n_leads, n_events = bad_rows
    leads, events = prep.tables["leads"], prep.tables["events"]
    assert (leads.read, leads.used) == (n_leads + 1, n_leads)
    assert leads.rejected == {accounting.DUPLICATE_ID: 1}
    assert (events.read, events.used, events.rejected_rows) == (n_events + 2, n_events, 2)
    rej = prep.rejects.frame
    assert len(rej) == 3 and set(rej["table"]) == {"leads", "events"}
    assert accounting.NO_LEAD in set(rej["reason"])


def test_prepare_hands_on_matching_slices_raw_scores_and_labels(prepared):
    prep, test = prepared
    assert prep.kind == "crm" and prep.target == "converted"
    assert prep.split_method == "time (by cut-off)" and not prep.crossfit
    assert set(prep.slices) == {"train", "valid", "calibration", "test"}
    assert sum(prep.slices.values()) == prep.summary["rows"]
    assert len(prep.raw_cal) == len(prep.y_cal) == prep.slices["calibration"]
    n_test = prep.slices["test"]
    assert len(prep.raw_test) == len(prep.y_test) == n_test
    assert set(np.unique(prep.y_test)) == {0.0, 1.0}
    assert list(prep.test_keys.columns) == ["lead_id", "_as_of"] and len(prep.test_keys) == n_test
    Xb, yb = prep.baseline_rows
    assert len(Xb) == len(yb) == prep.slices["train"] + prep.slices["valid"]
    assert prep.booster.num_feature() == len(prep.spec.feature_names)


def test_the_test_leads_are_the_test_slice(prepared):
    prep, test = prepared
    assert isinstance(test, LocalTestLeads)
    n_test = prep.slices["test"]
    assert test.X.shape == (n_test, len(prep.spec.feature_names))
    assert list(test.X.columns) == prep.spec.feature_names
    assert len(test.leads) == len(test.as_of) == n_test
    np.testing.assert_array_equal(test.leads["lead_id"].to_numpy(), prep.test_keys["lead_id"])
    # predict_test runs a function over the test features, in test order
    raw = test.predict_test(lambda X: prep.booster.predict(X.to_numpy(), raw_score=True))
    np.testing.assert_allclose(raw, prep.raw_test)


def test_another_model_scores_the_test_leads_from_their_raw_fields(prepared, crm_model):
    prep, test = prepared
    p = test.score_test(crm_model.scorer)
    assert p is not None and len(p) == prep.slices["test"]
    assert ((p > 0) & (p < 1)).all()


def test_the_input_example_is_raw_test_leads_without_personal_data(prepared):
    _, test = prepared
    example = test.example(3)
    assert len(example) == 3
    assert {"lead_id", "created_at", "job_title", "events", "as_of"} <= set(example.columns)
    assert not set(PERSONAL) & set(example.columns)
    assert "@" not in example.to_csv()
    assert example["lead_id"].tolist() == test.leads["lead_id"].astype(str).head(3).tolist()


def test_score_file_scores_or_rejects_every_row(bad_rows, crm_model, home, tmp_path):
    folder, n_leads, _ = bad_rows
    out = tmp_path / "scores.csv"
    summary = LocalEngine().score_file(
        folder, out, Settings.from_env(home), crm_model.uri, dataset.ReadOptions(), None
    )
    assert (summary.rows_in, summary.scored, summary.rejected) == (n_leads + 1, n_leads, 1)
    assert summary.tables["events"].rejected_rows == 2
    assert sum(summary.bands.values()) == n_leads
    assert summary.as_of is not None and summary.model == crm_model.uri
    scores = pd.read_csv(out)
    assert list(scores.columns) == ["lead_id", "probability", "score", "band", *LABELS]
    assert scores["grid"].notna().all() and scores["pql"].isin([True, False]).all()
    assert len(scores) == n_leads and scores["lead_id"].is_unique
    assert set(scores["band"]) <= {"SQL", "MQL", "Unqualified"}
    assert summary.rejects_path == tmp_path / "scores.rejects.csv"
    rejects = pd.read_csv(summary.rejects_path)
    assert len(rejects) == 3 and list(rejects.columns) == accounting.REJECT_COLUMNS
    for path in (out, summary.rejects_path):
        assert "@" not in path.read_text()


def test_score_file_at_a_given_cut_off_uses_it(bad_rows, crm_model, home, tmp_path):
    folder, _, _ = bad_rows
    cut = pd.Timestamp("2026-03-01")
    settings, options = Settings.from_env(home), dataset.ReadOptions()
    summary = LocalEngine().score_file(
        folder, tmp_path / "s.csv", settings, crm_model.uri, options, cut
    )
    assert summary.as_of == str(cut)


FLAT = TrainConfig.model_validate(
    {"flat": {"target": "won", "id_column": "customer_ref", "sep": ";"}}
)


def test_training_rows_put_every_usable_row_in_one_slice(tmp_path):
    frame = make_flat(400, seed=2).astype(object)
    frame.loc[5, "web_visits"] = "lots"  # rejected by the features: in no slice
    path = tmp_path / "export.csv"
    frame.to_csv(path, sep=";", index=False)
    rows = training_rows(path, FLAT, Stages(6, False))
    every = np.sort(np.concatenate(list(rows.pos.values())))
    np.testing.assert_array_equal(every, np.delete(np.arange(400), 5))
    assert {k: len(v) for k, v in rows.pos.items()} == {
        "test": 80,
        "calibration": 80,
        "valid": 40,
        "train": 199,
    }
    for name, pos in rows.pos.items():
        assert list(rows.X[name].columns) == rows.spec.feature_names
        np.testing.assert_array_equal(rows.Y[name], rows.lab.y[pos])
    assert rows.tables["leads"].rejected_rows == 1 and rows.method == "stratified random"
    X_fit, y_fit = rows.fit_rows()  # what a cross-fit learns from: train, valid, calibration
    assert X_fit.shape == (319, len(rows.spec.feature_names))
    np.testing.assert_array_equal(
        y_fit, np.concatenate([rows.Y[k] for k in ("train", "valid", "calibration")])
    )
    assert rows.crossfit(FLAT)
    assert not rows.crossfit(FLAT.with_changes({"split": {"crossfit_folds": 0}}))
    test = rows.test_leads().example(3)
    assert "contact_email" not in test and len(test) == 3
    ids = pd.Series(rows.lab.leads["customer_ref"].iloc[rows.pos["test"][:3]].to_numpy())
    assert test["customer_ref"].tolist() == ids.tolist()
