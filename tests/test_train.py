"""`train` without MLflow (register=False) on the small synthetic CRM data with one bad event
row: the TrainResult's pieces, the rejects file, and config mistakes as LeadmlErrors. With
MLflow, registering and promoting: test_train_mlflow.py and test_promotion.py (slow)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from leadml import accounting, train
from leadml.bands import BANDS
from leadml.config import Settings, TrainConfig
from leadml.errors import ContractError, LeadmlError

CONFIG = {"model": {"max_rounds": 50}}
METRICS = {"roc_auc", "pr_auc", "log_loss", "brier", "ece", "conversion_rate", "leads"}


@pytest.fixture(scope="module")
def one_bad_event(crm_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("train") / "crm"
    shutil.copytree(crm_dir, folder)
    events = pd.read_csv(folder / "events.csv", dtype=str, keep_default_na=False)
    events.loc[0, "event_type"] = "fax_sent"
    events.to_csv(folder / "events.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def trained(one_bad_event, tmp_path_factory):
    home = tmp_path_factory.mktemp("train_home")
    settings = Settings.from_env(home)
    result = train.train(
        one_bad_event, TrainConfig.model_validate(CONFIG), settings, register=False
    )
    return result, settings


def test_train_without_registering_returns_every_piece(trained):
    result, _ = trained
    subs = {"fit_roc_auc", "engagement_roc_auc", "usage_roc_auc"}  # the grades' sub-models alone
    assert set(result.metrics) == METRICS | subs and set(result.baseline) == METRICS
    assert 0.5 < result.metrics["fit_roc_auc"] < result.metrics["roc_auc"]
    assert 0.5 < result.metrics["engagement_roc_auc"] < result.metrics["roc_auc"]
    assert result.bayes is not None  # the sample has a truth file for this horizon
    assert result.metrics["leads"] == result.data_summary["slices"]["test"]
    assert 0 < result.thresholds.mql <= result.thresholds.sql < 1
    assert list(result.band_table["band"]) == list(BANDS)
    assert result.band_table["leads"].sum() == result.metrics["leads"]
    assert (result.run_id, result.version, result.promoted) == (None, None, False)
    assert result.export_path is None


def test_the_data_summary_counts_rows_and_steps(trained, one_bad_event):
    summary = trained[0].data_summary
    assert summary["kind"] == "crm" and summary["path"] == str(one_bad_event)
    assert summary["tables"]["events"]["rejected"] == 1 == summary["rejected_rows"]
    assert summary["tables"]["leads"]["rejected"] == 0
    assert summary["features"] == len(trained[0].scorer.spec.feature_names)
    assert summary["best_iteration"] <= 50
    assert summary["crossfit_folds"] == 0  # a time split fits on fixed slices
    assert list(summary["seconds"]) == [
        "reading data",
        "labelling cut-offs",
        "building features",
        "boosting",
        "calibrating and baseline",
        "grades",
        "evaluating",
    ]


def test_the_model_card_carries_the_summary_metrics_and_thresholds(trained):
    result, _ = trained
    card = result.scorer.card
    assert card["data"] is result.data_summary and card["metrics"] == result.metrics
    assert card["thresholds"] == result.thresholds.as_dict()
    assert card["target"] == "converted" and card["warnings"] == result.warnings
    assert [f["name"] for f in card["features"]] == result.scorer.spec.feature_names
    json.dumps(card, default=str)  # it is written into the model's files


def test_the_rejects_file_is_written_in_the_home_without_values(trained):
    result, settings = trained
    assert result.rejects_path == settings.home / "out" / "train-rejects.csv"
    rejects = pd.read_csv(result.rejects_path)
    assert list(rejects.columns) == accounting.REJECT_COLUMNS
    assert rejects[["table", "row", "field"]].values.tolist() == [["events", 1, "event_type"]]
    assert rejects["reason"][0].startswith("unknown event type")
    assert "fax_sent" not in result.rejects_path.read_text()  # the reason, never the value


def test_too_many_rejects_stops_and_names_the_rejects_file(one_bad_event, home):
    config = TrainConfig.model_validate({**CONFIG, "input": {"max_reject_share": 0.0}})
    settings = Settings.from_env(home)
    with pytest.raises(ContractError) as caught:
        train.train(one_bad_event, config, settings, register=False)
    path = home / "out" / "train-rejects.csv"
    assert str(caught.value).endswith(f"Rejected rows: {path}")
    assert "over the 0% limit" in str(caught.value)
    assert len(pd.read_csv(path)) == 1


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({}, "--target"),
        ({"flat": {"target": "region"}}, "Did you mean 'sales_region'?"),
        ({"flat": {"target": "won", "id_column": "nope"}}, "--id"),
        ({"flat": {"target": "won", "drop": ["nope"]}}, "--drop"),
        ({"flat": {"target": "won"}, "split": {"date_column": "signup"}}, "split.date_column"),
    ],
)
def test_a_config_mistake_on_a_flat_export_is_a_leadml_error(flat_csv, config, words):
    with pytest.raises(LeadmlError) as caught:
        train.fit(flat_csv, TrainConfig.model_validate(config))
    assert words in str(caught.value) and str(flat_csv) in str(caught.value)


def test_a_horizon_longer_than_the_data_is_a_leadml_error(crm_dir):
    config = TrainConfig.model_validate({"label": {"horizon_days": 3000}})
    with pytest.raises(LeadmlError, match="label.as_of"):
        train.fit(crm_dir, config)


def test_truth_metrics_only_for_the_horizon_of_the_truth_file(crm_dir, flat_csv):
    keys = pd.DataFrame({"lead_id": ["100001"], "_as_of": [pd.Timestamp("2026-01-01")]})
    y = np.array([1.0])
    assert train._truth_metrics(flat_csv, keys, 90, y) == (None, "")  # no truth next to a file
    meta = json.loads((crm_dir / "truth" / "truth.json").read_text())
    found, note = train._truth_metrics(crm_dir, keys, meta["horizon_days"] + 1, y)
    assert found is None and note.startswith(f"truth file is for a {meta['horizon_days']}-day")


def test_row_metrics_are_flat_names_per_table():
    summary = {"tables": {"leads": {"read": 10, "used": 9, "rejected": 1, "reasons": []}}}
    assert train._row_metrics(summary) == {
        "rows_leads_read": 10.0,
        "rows_leads_used": 9.0,
        "rows_leads_rejected": 1.0,
    }
    assert train._row_metrics({}) == {}


def test_importance_shares_add_up_and_are_sorted(trained):
    scorer = trained[0].scorer
    imp = train._importance(scorer)
    assert sorted(imp["column"]) == sorted(scorer.spec.feature_names)
    assert imp["gain_share"].sum() == pytest.approx(1.0)
    assert imp["gain"].is_monotonic_decreasing
    assert set(imp["feature"]) == {scorer.spec.labels.get(n, n) for n in imp["column"]}
