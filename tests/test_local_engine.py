"""The in-memory engine's steps before boosting (`training_rows`), which the Dask engine
shares for flat exports."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadml.config import TrainConfig
from leadml.local_engine import training_rows
from leadml.progress import Stages
from tests.conftest import make_flat

CONFIG = TrainConfig.model_validate(
    {"flat": {"target": "won", "id_column": "customer_ref", "sep": ";"}}
)


def test_training_rows_put_every_usable_row_in_one_slice(tmp_path):
    frame = make_flat(400, seed=2).astype(object)
    frame.loc[5, "web_visits"] = "lots"  # rejected by the features: in no slice
    path = tmp_path / "export.csv"
    frame.to_csv(path, sep=";", index=False)
    rows = training_rows(path, CONFIG, Stages(6, False))
    every = np.sort(np.concatenate(list(rows.pos.values())))
    np.testing.assert_array_equal(every, np.delete(np.arange(400), 5))
    assert {k: len(v) for k, v in rows.pos.items()} == {
        "test": 80,
        "calibration": 80,
        "valid": 40,
        "train": 199,
    }
    for name, pos in rows.pos.items():
        assert list(rows.X[name].columns) == rows.spec.feature_names
        np.testing.assert_array_equal(rows.Y[name], rows.lab.y[pos])
    assert rows.tables["leads"].rejected_rows == 1 and rows.method == "stratified random"
    X_fit, y_fit = rows.fit_rows()  # what a cross-fit learns from: train, valid, calibration
    assert X_fit.shape == (319, len(rows.spec.feature_names))
    np.testing.assert_array_equal(
        y_fit, np.concatenate([rows.Y[k] for k in ("train", "valid", "calibration")])
    )
    assert rows.crossfit(CONFIG)
    assert not rows.crossfit(CONFIG.with_changes({"split": {"crossfit_folds": 0}}))
    test = rows.test_leads().example(3)
    assert "contact_email" not in test and len(test) == 3
    ids = pd.Series(rows.lab.leads["customer_ref"].iloc[rows.pos["test"][:3]].to_numpy())
    assert test["customer_ref"].tolist() == ids.tolist()
