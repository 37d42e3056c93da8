"""Training with MLflow: one run per training, registry aliases, promotion, export, pyfunc."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadml import dataset, records, tracking
from leadml.config import Settings, TrainConfig
from leadml.grades import LABELS
from leadml.model import LeadScorer
from leadml.train import train

pytestmark = pytest.mark.slow


@pytest.fixture
def trained(home, crm_dir):
    settings = Settings.from_env()
    first = train(crm_dir, TrainConfig(), settings)
    return settings, first


def test_first_model_is_registered_promoted_and_exported(trained):
    import mlflow

    settings, result = trained
    assert result.version == "1" and result.promoted and result.promotion_note == "no champion yet"
    assert tracking.alias_version(settings, "champion") == "1"
    assert tracking.alias_version(settings, "challenger") == "1"
    card = json.loads((settings.export_dir / "champion" / "scorer.json").read_text())["card"]
    assert (
        card["registry"]["version"] == "1"
        and card["metrics"]["roc_auc"] == result.metrics["roc_auc"]
    )
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["test_roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert "bayes_roc_auc" in run.data.metrics and "baseline_roc_auc" in run.data.metrics
    assert run.data.params["data.hash"] == result.data_summary["hash"]
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id)}
    assert {
        "plots",
        "metrics.json",
        "bands.csv",
        "reliability.csv",
        "lift.csv",
        "config.yaml",
        "rejects.csv",
        "grades_grid.csv",
        "grades_temperature.csv",
        "grades_stage.csv",
        "grades_pql.csv",
    } <= arts
    plots = {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "plots")}
    assert plots == {
        "plots/roc.png",
        "plots/reliability.png",
        "plots/lift.png",
        "plots/feature_importance.png",
        "plots/grid.png",
        "plots/grades.png",
    }


def test_registered_pyfunc_returns_probability_score_band_and_grades(trained, crm_dir):
    import mlflow

    settings, result = trained
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    data = dataset.load(crm_dir)
    leads = data.leads.head(20)
    as_of = pd.Timestamp("2026-06-30")
    events = data.events[data.events["lead_id"].isin(leads["lead_id"])]
    scorer = LeadScorer.load(settings.export_dir / "champion")
    fields = scorer.spec.input_fields()  # what a caller sends: no personal data, no outcome
    request = records.from_tables(leads.astype({"lead_id": str})[fields], events, as_of)
    out = model.predict(request)
    assert list(out.columns) == ["lead_id", "probability", "score", "band", *LABELS]
    direct, _ = scorer.score_leads(leads, events, as_of=as_of)
    assert out["grid"].tolist() == direct["grid"].tolist() and out["grid"].notna().all()
    np.testing.assert_allclose(
        out["probability"].to_numpy(), direct["probability"].to_numpy(), rtol=0, atol=1e-12
    )
    assert out["lead_id"].tolist() == leads["lead_id"].astype(str).tolist()


def test_an_equal_model_is_promoted_a_worse_one_is_not(trained, crm_dir):
    settings, _ = trained
    again = train(crm_dir, TrainConfig(), settings)
    assert again.version == "2" and again.promoted  # same data, same seed: at least as good
    worse_cfg = TrainConfig.model_validate(
        {"model": {"max_rounds": 1, "num_leaves": 2, "baseline": False}}
    )
    worse = train(crm_dir, worse_cfg, settings)
    assert worse.version == "3" and not worse.promoted
    assert "vs champion v2" in worse.promotion_note
    assert tracking.alias_version(settings, "champion") == "2"
    assert tracking.alias_version(settings, "challenger") == "3"
    # promote by hand: the alias moves and the export follows
    from leadml.cli import main

    assert main(["-q", "promote", "--version", "3"]) == 0
    assert tracking.alias_version(settings, "champion") == "3"
    card = json.loads((settings.export_dir / "champion" / "scorer.json").read_text())["card"]
    assert card["registry"]["version"] == "3"
