"""Behavioural model tests on a small fitted model (no MLflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml import contract, dataset
from leadml.boosting import crossfit_folds, crossfit_rounds
from leadml.calibration import Calibrator
from leadml.config import TrainConfig
from leadml.model import LeadScorer
from leadml.train import fit

AS_OF = pd.Timestamp("2026-06-30")


@pytest.fixture(scope="module")
def fitted(crm_result):
    return crm_result


@pytest.fixture(scope="module")
def monotone(crm_dir):
    cfg = TrainConfig.model_validate({"model": {"monotone": True, "baseline": False}})
    result, _ = fit(crm_dir, cfg)
    return result.scorer


def test_fit_on_small_crm_data_beats_chance_and_is_calibrated(fitted):
    assert fitted.metrics["roc_auc"] > 0.7
    assert fitted.metrics["ece"] < 0.05
    assert fitted.bayes is not None and fitted.bayes["roc_auc"] >= fitted.metrics["roc_auc"] - 0.03
    assert fitted.data_summary["split"] == "time (by cut-off)"


def test_save_and_load_give_identical_scores(fitted, crm_dir, tmp_path):
    data = dataset.load(crm_dir)
    before, _ = fitted.scorer.score_leads(data.leads, data.events, as_of=AS_OF)
    fitted.scorer.save(tmp_path / "m")
    after, _ = LeadScorer.load(tmp_path / "m").score_leads(data.leads, data.events, as_of=AS_OF)
    pd.testing.assert_frame_equal(before, after)
    assert set(after["band"]) <= {"SQL", "MQL", "Unqualified"}
    assert after["score"].between(1, 99).all()


def test_id_email_and_name_never_move_a_score(fitted, crm_dir):
    data = dataset.load(crm_dir)
    leads = data.leads.head(200)
    events = data.events[data.events["lead_id"].isin(leads["lead_id"])]
    base, _ = fitted.scorer.score_leads(leads, events, as_of=AS_OF)
    changed = leads.assign(
        lead_id="X-" + leads["lead_id"],
        email="someone.else@example.net",
        first_name="Zed",
        phone="+44 20 0000 0000",
    )
    moved_events = events.assign(lead_id="X-" + events["lead_id"].astype(str))
    other, _ = fitted.scorer.score_leads(changed, moved_events, as_of=AS_OF)
    np.testing.assert_array_equal(base["probability"].to_numpy(), other["probability"].to_numpy())


def test_with_monotone_constraints_more_engagement_never_lowers_a_score(monotone, crm_dir):
    data = dataset.load(crm_dir)
    leads = data.leads.sample(300, random_state=0)
    events = data.events[data.events["lead_id"].isin(leads["lead_id"])]
    base, _ = monotone.score_leads(leads, events, as_of=AS_OF)
    rng = np.random.default_rng(0)
    positive = [t for t in contract.EVENT_TYPES if t not in ("unsubscribe", "bounce")]
    for _ in range(5):
        n = len(leads)
        extra = pd.DataFrame(
            {
                "lead_id": leads["lead_id"].to_numpy(),
                "occurred_at": AS_OF - pd.to_timedelta(rng.uniform(0.1, 60, n), unit="D"),
                "event_type": pd.Categorical(
                    rng.choice(positive, n), categories=contract.EVENT_TYPES
                ),
                "page": pd.Categorical(
                    rng.choice(["pricing", "product", "blog", ""], n),
                    categories=("", *contract.PAGE_KINDS),
                ),
            }
        )
        events = pd.concat([events, extra], ignore_index=True)
        more, _ = monotone.score_leads(leads, events, as_of=AS_OF)
        assert (more["probability"].to_numpy() >= base["probability"].to_numpy() - 1e-12).all()
        base = more


def test_calibrator_picks_sigmoid_for_logistic_data_and_maps_into_0_1():
    rng = np.random.default_rng(0)
    raw = rng.normal(0, 2, 5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-(0.5 * raw - 1)))).astype(float)
    cal = Calibrator("auto").fit(raw, y)
    assert cal.method_ == "sigmoid"
    assert cal.params_["a"] == pytest.approx(0.5, abs=0.1) and cal.params_["b"] == pytest.approx(
        -1, abs=0.15
    )
    p = cal.transform(np.array([-100.0, 0.0, 100.0]))
    assert (p > 0).all() and (p < 1).all() and p[0] < p[1] < p[2]
    again = Calibrator.from_dict(cal.to_dict())
    np.testing.assert_array_equal(again.transform(raw), cal.transform(raw))


def test_calibrator_picks_isotonic_for_a_step_shaped_truth():
    rng = np.random.default_rng(1)
    raw = rng.uniform(-3, 3, 8000)
    y = (rng.random(8000) < np.where(raw > 1, 0.9, 0.1)).astype(float)
    assert Calibrator("auto").fit(raw, y).method_ == "isotonic"


@pytest.mark.slow  # a whole training; find_leaks itself has unit tests in test_evaluate.py
def test_leakage_guard_warns_about_a_column_filled_after_the_outcome(tmp_path):
    from tests.conftest import make_flat

    frame = make_flat(1500)
    frame["sales_stage"] = np.where(
        frame["won"] == "yes",
        "Closed",
        np.random.default_rng(0).choice(["Open", "Lost"], len(frame)),
    )
    path = tmp_path / "leaky.csv"
    frame.to_csv(path, index=False)
    cfg = TrainConfig.model_validate({"flat": {"target": "won"}, "model": {"baseline": False}})
    result, _ = fit(path, cfg)
    leaks = [w for w in result.warnings if w.startswith("leakage guard")]
    assert len(leaks) == 1 and "'sales_stage'" in leaks[0] and "--drop" in leaks[0]


def test_fit_records_how_long_each_step_took(fitted):
    seconds = fitted.data_summary["seconds"]
    assert list(seconds) == [
        "reading data",
        "labelling cut-offs",
        "building features",
        "boosting",
        "calibrating and baseline",
        "grades",
        "evaluating",
    ]
    assert all(v >= 0 for v in seconds.values()) and seconds["boosting"] > 0


def test_crossfit_folds_hold_out_every_row_once_stratified_and_by_seed():
    y = np.r_[np.zeros(70), np.ones(30)]
    folds = crossfit_folds(y, 5, seed=7)
    held_out = np.concatenate([va for _, va in folds])
    assert sorted(held_out) == list(range(100))
    for fit_rows, va in folds:
        assert not set(fit_rows) & set(va) and len(fit_rows) + len(va) == 100
        assert y[va].sum() == 6  # each fold keeps the conversion rate
    again, other = crossfit_folds(y, 5, seed=7), crossfit_folds(y, 5, seed=8)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))
    assert not all((a[1] == b[1]).all() for a, b in zip(folds, other, strict=True))


def test_crossfit_rounds_are_the_folds_mean_and_at_least_one():
    assert crossfit_rounds([10, 11, 14]) == 11
    assert crossfit_rounds([0, 1]) == 1
