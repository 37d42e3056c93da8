"""Evaluation helpers and the leakage guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml import evaluate


def test_ece_is_zero_when_bins_match_and_measures_a_shift():
    p = np.repeat([0.05, 0.35, 0.85], 1000)
    y = np.concatenate(
        [
            np.r_[np.ones(50), np.zeros(950)],
            np.r_[np.ones(350), np.zeros(650)],
            np.r_[np.ones(850), np.zeros(150)],
        ]
    )
    assert evaluate.expected_calibration_error(y, p) == pytest.approx(0.0)
    assert evaluate.expected_calibration_error(y, np.clip(p + 0.04, 0, 1)) == pytest.approx(0.04)


def test_lift_and_gains():
    y = np.r_[np.ones(10), np.zeros(90)]
    p = np.linspace(1, 0, 100)
    lift = evaluate.lift_table(y, p)
    assert lift["lift"].iloc[0] == pytest.approx(10.0)
    assert lift["gains"].iloc[0] == pytest.approx(1.0) and lift["gains"].iloc[-1] == pytest.approx(
        1.0
    )


def test_band_backtest_counts_every_lead_once():
    y = np.array([1, 0, 1, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.3, 0.25, 0.1, 0.05])
    band = np.array(["SQL", "SQL", "MQL", "MQL", "Unqualified", "Unqualified"])
    t = evaluate.band_backtest(y, p, band).set_index("band")
    assert (
        t["leads"].sum() == 6
        and t.loc["SQL", "observed"] == 0.5
        and t.loc["SQL", "lift"] == pytest.approx(1.5)
    )


def test_leakage_guard_names_the_leaky_column_only():
    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.3
    X = pd.DataFrame(
        {
            "visits": rng.poisson(3, 3000) + y * rng.poisson(1, 3000),
            "sales_status": np.where(
                y, 2.0, rng.choice([0.0, 1.0], 3000)
            ),  # filled in after the outcome
            "region": rng.integers(0, 4, 3000).astype(float),
        }
    )
    found = evaluate.find_leaks(X, y, {"sales_status": "Sales status"}, 0.95)
    assert [name for name, _ in found] == ["Sales status"]


def test_leakage_guard_does_not_flag_a_noisy_number_with_few_rows():
    rng = np.random.default_rng(2)
    y = rng.random(300) < 0.4
    X = pd.DataFrame({"minutes": rng.gamma(2, 10, 300).round(1)})  # ~250 distinct values
    assert len(np.unique(X["minutes"])) < 300
    assert evaluate.find_leaks(X, y, {}, 0.95) == []
