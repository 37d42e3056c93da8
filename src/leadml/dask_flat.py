"""Training on a Dask cluster from a flat export (one file, one row per lead).

A flat export is read, checked, labelled, split and turned into features on the client by
`local_engine.training_rows`, the in-memory engine's own steps: some checks look at whole
columns (the type of a column, decimal commas, repeated ids), so the file is read whole, as
`dataset.load_flat` reads it, and a flat export must fit in the client's memory. The rejects,
counts, slices and features are therefore exactly the in-memory engine's; only the boosting
runs on the cluster (`dask_boost`): the feature rows are spread over the workers and fitted
with LightGBM's Dask estimator, cross-fitted when the in-memory engine would cross-fit.
The test leads stay on the client (`local_engine.LocalTestLeads`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadml import dask_boost
from leadml.boosting import lgb_names
from leadml.config import TrainConfig
from leadml.engine import Prepared, TestLeads
from leadml.features import FeatureSpec
from leadml.local_engine import training_rows
from leadml.progress import Stages


def prepare(
    client: Any, partitions: int | None, data_path: Path, config: TrainConfig, steps: Stages
) -> tuple[Prepared, TestLeads]:
    """`train.fit`'s engine steps for a flat export, boosting on the cluster."""
    rows = training_rows(data_path, config, steps)
    spec, X, Y = rows.spec, rows.X, rows.Y
    steps.next("boosting")
    crossfit = rows.crossfit(config)
    if crossfit:
        X_fit, y_cal = rows.fit_rows()
        booster, raw_cal = dask_boost.crossfit(client, X_fit, y_cal, spec, config, partitions)
    else:
        train = dask_boost.spread(client, _labelled(X["train"], Y["train"], spec), partitions)
        valid = _labelled(X["valid"], Y["valid"], spec)
        booster = dask_boost.boost(client, train, valid, spec, config)
        raw_cal = np.asarray(booster.predict(X["calibration"].to_numpy(), raw_score=True))
        y_cal = Y["calibration"]
    prep = rows.prepared(booster, crossfit, raw_cal, y_cal, config.model.baseline_max_rows)
    return prep, rows.test_leads()


def _labelled(X: pd.DataFrame, y: np.ndarray, spec: FeatureSpec) -> pd.DataFrame:
    """Feature rows under LightGBM's column names, with their labels."""
    return X.set_axis(lgb_names(spec), axis=1).assign(**{dask_boost.LABEL: y})
