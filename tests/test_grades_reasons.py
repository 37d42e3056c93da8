"""Reasons per sub-score (`Grades.reasons`, "what made the fit a B"): on the sub-model's own
scale they add up like the score's reasons, and name only that sub-model's features."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from leadml.features import build_features
from leadml.records import to_tables

pytestmark = pytest.mark.slow  # a trained model (conftest's crm_model)


@pytest.fixture(scope="module")
def X(crm_model, crm_records) -> np.ndarray:
    leads, events, as_of = to_tables(pd.DataFrame(crm_records), crm=True)
    feats = build_features(leads, events, crm_model.scorer.spec, as_of=as_of)
    return feats.X.to_numpy(np.float64)


@pytest.mark.parametrize("name", ["fit", "engagement"])
def test_sub_score_reasons_add_up_to_the_sub_models_score(crm_model, X, name):
    grades = crm_model.scorer.grades
    sub = getattr(grades, name)
    score = 100 * sub.calibrator.transform(sub.raw(X, grades._positions(sub)))
    lists = grades.reasons(X, crm_model.scorer.spec)[f"{name}_reasons"]
    assert len(lists) == len(X)
    for why, expected in zip(lists, score, strict=True):
        listed = [r["points"] for r in why["positive"] + why["negative"]]
        assert why["adds_up_to"] == name
        assert why["total"] == pytest.approx(expected, abs=1e-4)
        assert why["base_score"] + sum(listed) + why["other"] == pytest.approx(
            why["total"], abs=1e-6
        )
        assert all(x > 0 for x in listed[: len(why["positive"])])
        assert all(x < 0 for x in listed[len(why["positive"]) :])
        assert why["positive"] == sorted(why["positive"], key=lambda r: -r["points"])


def test_every_reason_listed_leaves_only_rounding(crm_model, X):
    """With every reason listed, `other` is the rounding of the points and the base alone."""
    spec, grades = crm_model.scorer.spec, crm_model.scorer.grades
    for why in grades.reasons(X, spec, top=1000)["engagement_reasons"]:
        shown = len(why["positive"]) + len(why["negative"])
        groups = len(spec.reason_groups())
        assert abs(why["other"]) <= 0.05 * (shown + 1) + 0.05 * groups


def test_each_sub_score_names_only_its_own_features(crm_model, X):
    spec, grades = crm_model.scorer.spec, crm_model.scorer.grades
    out = grades.reasons(X, spec, top=1000)
    for name in ("fit", "engagement"):
        columns = set(getattr(grades, name).columns)
        own = {
            label
            for label, cols in spec.reason_groups().items()
            if any(spec.feature_names[j] in columns for j in cols)
        }
        named = {r["field"] for why in out[f"{name}_reasons"] for r in why["positive"]}
        named |= {r["field"] for why in out[f"{name}_reasons"] for r in why["negative"]}
        assert named and named <= own
    fit_named = {r["field"] for why in out["fit_reasons"] for r in why["positive"]}
    assert "Seniority" in fit_named or "Industry" in fit_named  # the profile, as a marketer says it


def test_no_sub_model_means_no_reasons_for_it(crm_model, X):
    scorer = copy.copy(crm_model.scorer)
    scorer.grades = copy.copy(scorer.grades)
    scorer.grades.fit = None
    out = scorer.grade_reasons(X)
    assert out["fit_reasons"] == [None] * len(X)
    assert all(why["adds_up_to"] == "engagement" for why in out["engagement_reasons"])
    scorer.grades = None  # a model trained before grades
    assert scorer.grade_reasons(X) == {
        "fit_reasons": [None] * len(X),
        "engagement_reasons": [None] * len(X),
    }


def test_the_score_and_a_sub_score_explain_the_same_profile_the_same_way(crm_model, X):
    """A lead's fit reasons and its score reasons agree on the sign of the profile's strongest
    part (both models learned it from the same leads), so a marketer is not told opposite
    stories."""
    scorer = crm_model.scorer
    fit = scorer.grade_reasons(X, top=1)["fit_reasons"]
    main = scorer.reasons(X, top=1000)
    agree = 0
    for f, m in zip(fit, main, strict=True):
        if not f["positive"]:
            continue
        top = f["positive"][0]["field"]
        points = {r["field"]: r["points"] for r in m["positive"] + m["negative"]}
        agree += points.get(top, 0) >= 0
    assert agree >= 0.8 * sum(bool(f["positive"]) for f in fit)
