"""monitor: the readiness gate, the figures (AUC and its interval, calibration per band and
cell, labels within the horizon) and the verdict in words."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from leadml import monitor
from leadml.config import MonitorConfig
from leadml.errors import ConfigError
from leadml.monitor import readiness


def test_readiness_needs_both_leads_and_conversions():
    config = MonitorConfig(min_leads=1000, min_conversions=100)
    assert readiness(1000, 100, config).ready
    few = readiness(999, 150, config)
    assert not few.ready and "999 matured leads (need 1,000)" in few.reason
    rare = readiness(5000, 99, config)
    assert not rare.ready and "99 conversions (need 100)" in rare.reason
    assert "matured leads" not in rare.reason  # only what is short is named


# ---- the figures and the verdict ---------------------------------------------------------


def test_weighted_auc_matches_sklearn_with_ties_and_weights():
    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.2
    p = np.round(rng.random(3000) * 0.5 + 0.3 * y, 2)  # many ties
    _, codes = np.unique(p, return_inverse=True)
    k = codes.max() + 1
    assert monitor.weighted_auc(y, codes, k, np.ones(3000)) == pytest.approx(roc_auc_score(y, p))
    w = rng.poisson(1.0, 3000)  # a weight is a repeat count
    rep = np.repeat(np.arange(3000), w)
    got = monitor.weighted_auc(y, codes, k, w.astype(float))
    assert got == pytest.approx(roc_auc_score(y[rep], p[rep]))


def test_auc_interval_covers_the_truth_and_narrows_with_more_leads():
    def draw(n, seed):
        rng = np.random.default_rng(seed)
        y = rng.random(n) < 0.2
        return y, rng.normal(y * 1.0, 1.0)

    y, p = draw(2000, 1)
    auc, low, high, se = monitor.auc_interval(y, p)
    true = 0.760  # AUC of two unit normals one standard deviation apart: Phi(1 / sqrt 2)
    assert low < auc < high and low < true < high
    y, p = draw(20000, 2)
    _, low2, high2, se2 = monitor.auc_interval(y, p)
    assert (high2 - low2) < (high - low) / 2 and se2 < se


def scores(as_of: list[str], leads: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(len(leads)),
            "lead_id": leads,
            "as_of": pd.to_datetime(as_of, utc=True),
            "probability": 0.5,
            "band": "MQL",
        }
    )


def test_label_counts_each_lead_once_within_the_horizon():
    s = scores(
        ["2026-06-01", "2026-06-10", "2026-06-01", "2026-06-01", "2026-06-01", "2026-06-01"],
        ["a", "a", "b", "c", "d", "e"],
    )
    outcomes = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "converted": [1, 1, 1, 0],
            "converted_at": pd.to_datetime(["2026-06-20", "2026-07-15", "2026-05-20", None]),
        }
    )
    got = monitor.label(s, outcomes, 30).set_index("lead_id")
    assert len(got) == 5  # 'a' once: its first score (June 1)
    assert got.loc["a", "outcome"] == 1  # converted 19 days after
    assert got.loc["b", "outcome"] == 0  # 44 days after: beyond the horizon
    assert got.loc["c", "converted_before"] and np.isnan(got.loc["c", "outcome"])
    assert got.loc["d", "outcome"] == 0
    assert got.loc["e", "no_outcome"] and np.isnan(got.loc["e", "outcome"])


def test_the_default_period_ends_where_outcomes_have_matured():
    cfg = MonitorConfig(window_days=90)
    seen = pd.Timestamp("2026-07-30")
    p = monitor.Period.default(seen, 30, cfg)
    assert p.until > pd.Timestamp("2026-06-30") >= p.until - pd.Timedelta(seconds=1)
    assert p.since == p.until - pd.Timedelta(days=90)
    with pytest.raises(ConfigError, match="Pick an earlier --since"):
        monitor.Period.default(seen, 30, cfg, since=pd.Timestamp("2026-07-01"))


CARD = {
    "metrics": {"roc_auc": 0.80, "leads": 2000, "conversion_rate": 0.17},
    "band_backtest": [
        {"band": "SQL", "share": 0.06, "observed": 0.68},
        {"band": "MQL", "share": 0.2, "observed": 0.3},
        {"band": "Unqualified", "share": 0.74, "observed": 0.08},
    ],
}


def world(n: int, seed: int, sql_rate: float | None = None) -> pd.DataFrame:
    """Calibrated scores (outcome drawn from the probability), optionally with the SQL band
    converting at `sql_rate` instead."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1.2, 5, n)
    band = np.where(p >= 0.5, "SQL", np.where(p >= 0.2, "MQL", "Unqualified"))
    rate = p if sql_rate is None else np.where(band == "SQL", sql_rate, p)
    cells = np.asarray([f"{f}{e}" for f in "ABCD" for e in "1234"])[rng.integers(0, 16, n)]
    return pd.DataFrame(
        {
            "probability": p,
            "band": band,
            "outcome": (rng.random(n) < rate).astype(float),
            "grid": cells,
        }
    )


def test_calibration_raises_no_false_alarm_on_calibrated_leads():
    flagged = 0
    for seed in range(20):
        cal = monitor.calibration(world(3000, seed), CARD)
        flagged += any(r["status"] != "ok" for r in cal["bands"] + cal["grid"])
    assert flagged <= 1  # Bonferroni over 3 bands and 16 cells: about 1% per report


def test_a_band_that_stopped_converting_is_an_alert_in_words():
    frame = world(4000, 3, sql_rate=0.25)
    cal = monitor.calibration(frame, CARD)
    sql = next(r for r in cal["bands"] if r["band"] == "SQL")
    assert sql["status"] == "alert" and sql["expected"] == 0.68
    result = {
        "discrimination": None,
        "calibration": cal,
        "score_drift": {"bands": []},
        "drift": None,
    }
    ready = monitor.readiness(4000, 800, MonitorConfig())
    v = monitor.verdict(result, ready, 0.0)
    assert v["verdict"] == "alert" and v["exit_code"] == 2
    assert any(r.startswith("SQL band converts 2") for r in v["reasons"])
    assert any("retrain" in a for a in v["actions"])
    # the same findings on too little matured data: no alarm
    few = monitor.verdict(result, monitor.readiness(400, 80, MonitorConfig()), 0.0)
    assert few["verdict"] == "not_ready" and few["exit_code"] == 0
    assert "not enough matured data" in few["reasons"][0]


def test_discrimination_counts_a_drop_only_beyond_tolerance_and_chance():
    cfg = MonitorConfig(auc_tolerance=0.02)
    rng = np.random.default_rng(4)
    y = rng.random(3000) < 0.17
    strong = rng.normal(y * 1.2, 1.0)  # AUC ~0.80, as at training
    weak = rng.normal(y * 0.5, 1.0)  # AUC ~0.64
    assert monitor.discrimination(y, strong, CARD, cfg)["status"] == "ok"
    d = monitor.discrimination(y, weak, CARD, cfg)
    assert d["status"] == "alert" and d["high"] < 0.78
    v = monitor.verdict(
        {"discrimination": d, "calibration": None, "score_drift": {"bands": []}, "drift": None},
        monitor.readiness(3000, int(y.sum()), cfg),
        0.0,
    )
    assert "ranking weaker than at training: AUC 0.6" in v["reasons"][0]
