"""Boosting on a Dask cluster: LightGBM's Dask estimator on feature rows spread over the
workers, for CRM tables and flat exports alike.

The rows are Dask DataFrames with LightGBM's column names (`boosting.lgb_names`) and the label
in `_y`. LightGBM's Dask estimator has no early stopping, so every fit runs a fixed number
of rounds and is cut back afterwards to the rounds with the lowest log loss on held-out rows
(`boosting.best_rounds`): early stopping after the fact. `crossfit` is `boosting.fit_crossfit`
with each fit on the cluster: the same folds, the same rule for the final booster's rounds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from leadml.boosting import (
    best_rounds,
    booster_params,
    categorical_positions,
    crossfit_folds,
    crossfit_rounds,
    lgb_names,
)
from leadml.config import TrainConfig
from leadml.dask_tables import scatter_rows
from leadml.features import FeatureSpec

if TYPE_CHECKING:
    import lightgbm as lgb

SAMPLE_ROWS = 200_000  # rows brought to the client for the leakage guard and best rounds
LABEL = "_y"  # the label column, as `labels.label_rows` names it
FOLD = "_fold"  # which fold holds a row out of its fit (cross-fitting)


def fit(client: Any, rows: Any, spec: FeatureSpec, config: TrainConfig, rounds: int) -> lgb.Booster:
    """LightGBM's Dask estimator, `rounds` rounds on `rows` (a Dask DataFrame)."""
    import lightgbm as lgb

    params = booster_params(spec, config.model, config.split.seed)
    params.pop("metric")
    model = lgb.DaskLGBMClassifier(client=client, n_estimators=rounds, **params)
    model.fit(rows[lgb_names(spec)], rows[LABEL], categorical_feature=categorical_positions(spec))
    return model.booster_


def boost(
    client: Any, train: Any, valid: pd.DataFrame, spec: FeatureSpec, config: TrainConfig
) -> lgb.Booster:
    """`max_rounds` rounds on the training rows (on the cluster), cut back to the rounds with
    the lowest log loss on `valid` (validation rows, or a sample of them, on the client)."""
    booster = fit(client, train, spec, config, config.model.max_rounds)
    names = lgb_names(spec)
    rounds = best_rounds(booster, valid[names].to_numpy(), valid[LABEL].to_numpy())
    return _cut(booster, rounds)


def crossfit(
    client: Any,
    X: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    config: TrainConfig,
    partitions: int | None,
) -> tuple[lgb.Booster, np.ndarray]:
    """`boosting.fit_crossfit` on the cluster: the rows `X`, `y` (on the client) go to the
    workers once, with the fold of each; every fold's fit runs there, its best rounds and
    out-of-fold raw scores are found on the client, and the final booster learns from every
    row. Returns the final booster and the out-of-fold raw scores."""
    sc = config.split
    folds = crossfit_folds(y, sc.crossfit_folds, sc.seed)
    fold = np.empty(len(y), dtype=np.int64)
    for k, (_, held_out) in enumerate(folds):
        fold[held_out] = k
    frame = pd.DataFrame(X, columns=lgb_names(spec)).assign(**{LABEL: y, FOLD: fold})
    rows = spread(client, frame, partitions).persist()
    oof = np.empty(len(y))
    iters = []
    for k, (_, held_out) in enumerate(folds):
        booster = fit(client, rows[rows[FOLD] != k], spec, config, config.model.max_rounds)
        rounds = best_rounds(booster, X[held_out], y[held_out])
        oof[held_out] = booster.predict(X[held_out], raw_score=True, num_iteration=rounds)
        iters.append(rounds)
    return _cut(fit(client, rows, spec, config, crossfit_rounds(iters)), None), oof


def spread(client: Any, frame: pd.DataFrame, partitions: int | None) -> Any:
    """A frame held on the client as a Dask DataFrame on the workers, in contiguous chunks."""
    import dask.dataframe as dd

    return dd.from_delayed(scatter_rows(client, frame, partitions), meta=frame.iloc[:0])


def sample(frame: Any, rows: int, total: int) -> pd.DataFrame:
    """Up to about `rows` rows of a Dask frame of `total` rows, brought to the client."""
    frac = min(1.0, rows / max(total, 1))
    return (frame if frac >= 1.0 else frame.sample(frac=frac, random_state=0)).compute()


def _cut(booster: lgb.Booster, rounds: int | None) -> lgb.Booster:
    """A plain booster of the first `rounds` rounds (None: all), free of the Dask estimator."""
    import lightgbm as lgb

    return lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))
