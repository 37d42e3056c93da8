"""profile: the reference profile saved with a model (fixed bins, shares, missing rates)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from leadml import profile
from leadml.features import FeatureSpec


def spec() -> FeatureSpec:
    return FeatureSpec(
        kind="flat",
        id_column="id",
        feature_names=["visits", "source", "flag"],
        categorical=["source"],
        categories={"source": ["ads", "event", "web"]},
        labels={"visits": "Site visits"},
    )


def frame(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(2.0, n).astype(float)
    visits[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "visits": visits,
            "source": rng.choice(3, n, p=[0.5, 0.3, 0.2]).astype(float),
            "flag": np.zeros(n),
        }
    )


def test_numbers_get_fixed_bins_and_categories_a_bin_each_plus_unseen():
    X = frame()
    p = profile.build(X, spec())
    visits, source, flag = (p.features[n] for n in ("visits", "source", "flag"))
    assert visits.kind == "numeric" and source.kind == "category"
    assert visits.edges == sorted(set(visits.edges))  # each edge once, though counts repeat
    assert abs(visits.missing - 0.1) < 0.02
    assert abs(sum(visits.shares) - 1) < 1e-4
    assert len(source.shares) == 4 and source.shares[-1] == 0.0  # the unseen bin
    assert np.allclose(source.shares[:3], [0.5, 0.3, 0.2], atol=0.03)
    assert source.labels == ["ads", "event", "web"]
    # a constant feature keeps a bin above its value, so a change would show
    assert flag.shares[1] == 1.0 and len(flag.shares) == 3
    counts, _ = flag.counts(np.array([0.0, 1.0, 2.0]))
    assert counts.tolist() == [0, 1, 2]


def test_binning_agrees_with_the_store_rounding():
    """A value and its 3-significant-digit copy (what the score store keeps) share a bin."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"visits": rng.lognormal(1, 1, 4000), "source": 0.0, "flag": 0.0})
    fp = profile.build(X, spec()).features["visits"]
    values = X["visits"].to_numpy()
    stored = np.array([float(f"{v:.3g}") for v in values])
    assert (fp.counts(values)[0] == fp.counts(stored)[0]).all()
    assert np.allclose(profile.round_like_store(values), stored)


def test_saved_with_the_model_small_and_read_back(tmp_path):
    p = profile.build(frame(), spec())
    path = p.save(tmp_path)
    assert path.name == "profile.json" and path.stat().st_size < 5000
    assert profile.load(tmp_path) == p
    assert profile.load(tmp_path / "elsewhere") is None  # a model from before profiles
    assert json.loads(path.read_text())["rows"] == 5000
