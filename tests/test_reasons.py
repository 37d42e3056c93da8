"""Reasons add up: for every lead, base score + listed points + `other` is the score before
rounding (100 x probability) to 1e-6, and no single reason is worth an absurd number of points.

Checked on the CRM and flat fixtures, on 50 real X Education leads (when the file is on this
machine), and on a calibration with a steep step next to the average lead.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from leadml import records
from leadml.api import create_app
from leadml.calibration import Calibrator
from leadml.config import ServeSettings
from leadml.features import build_features
from tests.conftest import make_flat

pytestmark = pytest.mark.slow


def predictions(model, leads: list[dict]) -> list[dict]:
    app = create_app(serve=ServeSettings(reload_seconds=0), model=model)
    with TestClient(app) as c:
        r = c.post("/predict", json={"leads": leads})
    assert r.status_code == 200, r.text[:500]
    return r.json()["predictions"]


def assert_reasons_add_up(preds: list[dict]) -> None:
    for p in preds:
        why = p["reasons"]
        listed = [x["points"] for x in why["positive"] + why["negative"]]
        assert why["adds_up_to"] == "score"
        assert why["total"] == pytest.approx(100 * p["probability"], abs=1e-6)
        assert why["base_score"] + sum(listed) + why["other"] == pytest.approx(
            100 * p["probability"], abs=1e-6
        ), (p["lead_id"], why)
        assert all(x > 0 for x in listed[: len(why["positive"])])
        assert all(x < 0 for x in listed[len(why["positive"]) :])
        assert max(map(abs, listed), default=0) <= 100


def test_reasons_add_up_to_the_score_on_crm_leads(crm_model, crm_records):
    assert_reasons_add_up(predictions(crm_model, crm_records))


def test_reasons_add_up_to_the_score_on_flat_leads(flat_model):
    rows = make_flat(60, seed=8).drop(columns=["won"])
    assert_reasons_add_up(predictions(flat_model, json.loads(rows.to_json(orient="records"))))


def test_reasons_add_up_to_the_score_on_x_education_leads(xedu_model, xedu_leads):
    preds = predictions(xedu_model, xedu_leads)
    assert len(preds) == 50
    assert_reasons_add_up(preds)


def test_points_add_up_for_every_lead_near_or_far_from_the_average(crm_model, crm_records):
    """`LeadScorer.points` (the ledger reads it too) adds up exactly for every lead."""
    leads, events, as_of = records.to_tables(pd.DataFrame(crm_records), crm=True)
    X = build_features(leads, events, crm_model.scorer.spec, as_of=as_of).X
    points, base, _ = crm_model.scorer.points(X)
    p = crm_model.scorer.probability(X)
    np.testing.assert_allclose(base + points.sum(axis=1), 100 * p, atol=1e-6)


def test_points_add_up_next_to_the_average_lead_with_a_steep_calibration(crm_model, crm_records):
    """An isotonic step of 90 points right at the average lead: one slope for all of a lead's
    parts would turn a lead next to the average into reasons worth hundreds of points."""
    leads, events, as_of = records.to_tables(pd.DataFrame(crm_records), crm=True)
    X = build_features(leads, events, crm_model.scorer.spec, as_of=as_of).X.to_numpy()
    contrib = crm_model.scorer.booster.predict(X, pred_contrib=True)
    bias, delta = contrib[0, -1], contrib.sum(axis=1) - contrib[0, -1]
    width = 2 * np.abs(delta).min()  # the lead nearest the average sits inside the step
    scorer = copy.copy(crm_model.scorer)
    scorer.calibrator = Calibrator.from_dict(
        {"method": "isotonic", "params": {"x": [bias - width, bias + width], "y": [0.05, 0.95]}}
    )
    points, base, _ = scorer.points(X)
    p = scorer.probability(X)
    assert base == pytest.approx(50)
    np.testing.assert_allclose(base + points.sum(axis=1), 100 * p, atol=1e-6)
    assert np.abs(points).max() <= 100
    groups = list(scorer.spec.reason_groups().values())
    parts = np.column_stack([contrib[:, cols].sum(axis=1) for cols in groups])
    assert (points * parts >= 0).all()  # a part that raises the log-odds never costs points
    for p_lead, why in zip(p, scorer.reasons(X), strict=True):
        listed = sum(x["points"] for x in why["positive"] + why["negative"])
        total = 100 * round(float(p_lead), 6)  # the probability as a response shows it
        assert why["base_score"] + listed + why["other"] == pytest.approx(total, abs=1e-6)
