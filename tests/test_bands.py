"""Bands: score is the probability in percent, thresholds follow the policy."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from leadml.bands import BandThresholds, fit_thresholds, to_band, to_score
from leadml.config import BandConfig


def test_score_is_percent_clipped_to_1_99():
    p = np.array([0.0, 0.004, 0.006, 0.4049, 0.5, 0.994, 1.0])
    assert to_score(p).tolist() == [1, 1, 1, 40, 50, 99, 99]


def test_band_edges_are_inclusive():
    t = BandThresholds(sql=0.5, mql=0.2, policy="fixed")
    assert to_band(np.array([0.5, 0.4999, 0.2, 0.1999]), t).tolist() == [
        "SQL",
        "MQL",
        "MQL",
        "Unqualified",
    ]


def test_fixed_policy_uses_the_configured_probabilities():
    t = fit_thresholds(
        BandConfig(policy="fixed", sql=0.6, mql=0.3), np.random.default_rng(0).random(100)
    )
    assert (t.sql, t.mql) == (0.6, 0.3)


def test_rate_policy_bands_reach_their_conversion_rates():
    rng = np.random.default_rng(1)
    p = rng.beta(1, 4, 20000)
    t = fit_thresholds(BandConfig(policy="rate", sql=0.5, mql=0.3), p)
    sql, mql = p[p >= t.sql], p[(p >= t.mql) & (p < t.sql)]
    assert sql.mean() >= 0.5 and mql.mean() >= 0.3
    # lowest such thresholds: adding the next lead below would break the SQL rate
    below = p[p < t.sql].max()
    assert np.append(sql, below).mean() < 0.5


def test_capacity_policy_shares_and_counts():
    p = np.random.default_rng(2).random(10000)
    t = fit_thresholds(BandConfig(policy="capacity", sql=0.05, mql=0.25), p)
    assert (p >= t.sql).mean() == pytest.approx(0.05, abs=0.002)
    assert (p >= t.mql).mean() == pytest.approx(0.25, abs=0.002)
    t2 = fit_thresholds(BandConfig(policy="capacity", sql=100, mql=500, leads_per_period=2000), p)
    assert (p >= t2.sql).mean() == pytest.approx(0.05, abs=0.002)


@pytest.mark.parametrize(
    "bad",
    [
        {"policy": "fixed", "sql": 0.2, "mql": 0.5},
        {"policy": "rate", "sql": 1.5, "mql": 0.2},
        {"policy": "capacity", "sql": 0.3, "mql": 0.1},
        {"policy": "percentile", "sql": 0.5, "mql": 0.2},
    ],
)
def test_inconsistent_policies_are_refused(bad):
    with pytest.raises(ValidationError):
        BandConfig(**bad)
