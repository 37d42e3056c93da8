"""The split on hand-made labelled rows; expected positions are worked out by hand."""

import numpy as np
import pandas as pd

from leadml import accounting, dataset, labels, split
from leadml.config import TrainConfig

CONFIG = TrainConfig.model_validate({"split": {"test": 0.2, "calibration": 0.2, "valid": 0.2}})


def _flat(dates: list[str] | None, y: list[float]) -> labels.Labelled:
    leads = pd.DataFrame({"row_id": range(len(y)), "converted": y})
    if dates is not None:
        leads["created"] = pd.to_datetime(dates)
    data = dataset.LeadData(
        "flat",
        leads,
        None,
        "row_id",
        "converted",
        "created" if dates else None,
        accounting.Rejects(),
        {"paths": [], "hash": ""},
    )
    return labels.label(data, CONFIG)


def test_time_split_keeps_ties_in_their_order():
    d1, d2, d3 = "2024-01-01", "2024-02-01", "2024-03-01"
    dates = [d2, d1, d1, d3, d1, d2, d3, d3, d1, d2]
    lab = _flat(dates, [0, 1] * 5)
    # stable order: d1 at 1, 2, 4, 8; d2 at 0, 5, 9; d3 at 3, 6, 7
    assert lab.order.tolist() == [1, 2, 4, 8, 0, 5, 9, 3, 6, 7]
    parts = split.split(lab, CONFIG)  # 20 % of 10 rows = 2 rows per held-out slice
    assert parts["test"].tolist() == [6, 7]  # the last two d3 rows; row 3 (d3) comes first
    assert parts["calibration"].tolist() == [3, 9]
    assert parts["valid"].tolist() == [0, 5]
    assert parts["train"].tolist() == [1, 2, 4, 8]
    assert parts["method"].tolist() == ["time"]


def test_slices_have_at_least_one_row():
    assert split.slice_size(0.2, 3) == 1  # round(0.6)
    assert split.slice_size(0.2, 2) == 1  # round(0.4) = 0, raised to 1
    assert split.slice_size(0.2, 13) == 3  # round(2.6)


def test_by_cutoff_newest_three_are_held_out():
    snapshot = np.array([0, 1, 2, 3, 4, 0, 3])
    lab = labels.Labelled(pd.DataFrame(index=range(7)), None, np.zeros(7), None, snapshot, None, {})
    parts = split.split(lab, CONFIG)
    assert parts["test"].tolist() == [0, 5]
    assert parts["calibration"].tolist() == [1]
    assert parts["valid"].tolist() == [2]
    assert parts["train"].tolist() == [3, 4, 6]
    assert parts["method"].tolist() == ["time (by cut-off)"]


def test_fewer_than_four_cutoffs_split_by_time_order():
    snapshot = np.array([0, 1, 2, 0, 1])
    order = np.array([4, 3, 2, 1, 0])
    lab = labels.Labelled(
        pd.DataFrame(index=range(5)), None, np.zeros(5), None, snapshot, order, {}
    )
    parts = split.split(lab, CONFIG)  # one row per held-out slice, the newest of `order`
    assert [parts[k].tolist() for k in ("test", "calibration", "valid", "train")] == [
        [0],
        [1],
        [2],
        [3, 4],
    ]


def test_stratified_split_without_dates_keeps_the_rate_and_is_repeatable():
    y = [1.0] * 10 + [0.0] * 40
    lab = _flat(None, y)
    assert lab.order is None
    parts = split.split(lab, CONFIG)
    assert parts["method"].tolist() == ["stratified random"]
    held = ("test", "calibration", "valid")
    # 10 rows each at the 20 % rate: 2 conversions; the 20 left for training have 4
    assert [int(lab.y[parts[k]].sum()) for k in held] == [2, 2, 2]
    assert len(parts["train"]) == 20 and int(lab.y[parts["train"]].sum()) == 4
    every = np.sort(np.concatenate([parts[k] for k in (*held, "train")]))
    assert every.tolist() == list(range(50))
    again = split.split(lab, CONFIG)
    assert all(np.array_equal(parts[k], again[k]) for k in (*held, "train"))
