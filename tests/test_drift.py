"""drift: features of the scored leads against the reference profile, said in words."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from leadml import drift, profile
from leadml.config import MonitorConfig
from tests.test_profile import frame, spec


def found(now: pd.DataFrame) -> dict[str, drift.FeatureDrift]:
    p = profile.build(frame(seed=0), spec())
    return {d.feature: d for d in drift.compare(p, now, spec(), MonitorConfig())}


def test_the_same_world_raises_nothing():
    got = found(frame(seed=7))
    assert all(d.status == "ok" and d.psi < 0.02 for d in got.values()), got
    assert all(d.reason == "" for d in got.values())


def test_a_category_shift_is_an_alert_said_in_words():
    now = frame(seed=7)
    rng = np.random.default_rng(3)
    now["source"] = rng.choice(3, len(now), p=[0.15, 0.3, 0.55]).astype(float)
    got = found(now)
    assert got["source"].status == "alert" and got["source"].psi >= 0.25
    assert "of leads are now 'web'" in got["source"].reason
    assert re.search(r"\((19|20|21)% at training\)$", got["source"].reason)
    assert got["visits"].status == "ok"  # only what moved


def test_unseen_categories_and_missing_values_are_named():
    now = frame(seed=7)
    now.loc[now.index[:1500], "source"] = 3.0  # a code beyond the vocabulary: unseen
    now.loc[now.index[2000:3500], "visits"] = np.nan
    got = found(now)
    assert got["source"].new_share == 0.3
    assert "30% of leads now have a value unseen in training" in got["source"].reason
    assert got["visits"].missing_now > 0.35 and got["visits"].status == "alert"
    assert "Site visits:" in got["visits"].reason and "missing" in got["visits"].reason


def test_a_numeric_shift_uses_the_training_bins():
    now = frame(seed=7)
    now["visits"] = now["visits"] + 3
    got = found(now)
    assert got["visits"].status == "alert"
    assert "or more" in got["visits"].reason  # the top bin filled up
    # a milder shift is a warning, not an alert
    mild = frame(seed=7)
    rng = np.random.default_rng(5)
    bump = rng.random(len(mild)) < 0.35
    mild.loc[bump, "visits"] = mild.loc[bump, "visits"] + 2
    assert found(mild)["visits"].status in ("warn", "alert")
    assert found(mild)["visits"].psi < found(now)["visits"].psi
