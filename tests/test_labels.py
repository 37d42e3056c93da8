"""Label construction on hand-made leads: who is in the population at a cut-off, who counts
as converted, how cut-offs are planned, and the data's "now". Every expected value below is
worked out by hand in the comments."""

import numpy as np
import pandas as pd
import pytest

from leadml import accounting, dataset, labels
from leadml.config import TrainConfig
from leadml.errors import ContractError

T = pd.Timestamp
CUT = T("2024-01-10")  # horizon 30 days: the window ends at 2024-02-09 00:00, included


def _leads() -> pd.DataFrame:
    rows = [  # lead_id, created_at, converted, converted_at
        ("a", "2024-01-01", 1, "2024-02-09 00:00:00"),  # exactly at the horizon edge: y = 1
        ("b", "2024-01-01", 1, "2024-02-09 00:00:01"),  # one second late: y = 0
        ("c", "2024-01-01", 1, "2024-01-10 00:00:00"),  # converted exactly at the cut-off: out
        ("d", "2024-01-01", 1, "2024-01-05 00:00:00"),  # converted before the cut-off: out
        ("e", "2024-01-10", 0, None),  # created exactly at the cut-off: out
        ("f", "2024-01-11", 1, "2024-01-20 00:00:00"),  # created after the cut-off: out
        ("g", "2024-01-01", 0, None),  # never converts: y = 0
    ]
    frame = pd.DataFrame(rows, columns=["lead_id", "created_at", "converted", "converted_at"])
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    frame["converted_at"] = pd.to_datetime(frame["converted_at"])
    return frame


def _crm(leads: pd.DataFrame, events: pd.DataFrame | None = None) -> dataset.LeadData:
    if events is None:
        events = pd.DataFrame({"lead_id": [], "occurred_at": pd.to_datetime([])})
    return dataset.LeadData(
        "crm",
        leads,
        events,
        "lead_id",
        "converted",
        "created_at",
        accounting.Rejects(),
        {"paths": [], "hash": ""},
    )


def test_population_edges_at_one_cutoff():
    pop, y = labels.population(_leads(), np.datetime64(CUT, "ns"), np.timedelta64(30, "D"))
    assert pop.tolist() == [True, True, False, False, False, False, True]
    assert y[pop].tolist() == [True, False, False]  # a converts at the edge; b, g do not


def test_label_rows_per_cutoff_with_snapshot_rank_and_label():
    # At 2024-01-05 (window to 2024-02-04): a and b convert too late (y 0), c converts on
    # 2024-01-10 (y 1), d converted on the cut-off itself (out), g never (y 0).
    cuts = [np.datetime64("2024-01-10", "ns"), np.datetime64("2024-01-05", "ns")]
    rows = labels.label_rows(_leads(), cuts, 30)
    assert rows["lead_id"].tolist() == ["a", "b", "g", "a", "b", "c", "g"]
    assert rows["_snapshot"].tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert rows["_y"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert rows["_as_of"].tolist() == [T("2024-01-10")] * 3 + [T("2024-01-05")] * 4
    assert labels.population_counts(_leads(), cuts, 30).tolist() == [3, 4]


def _plan(snapshots: int, sizes: list[int]) -> list:
    config = TrainConfig.model_validate(
        {"label": {"horizon_days": 30, "snapshots": snapshots, "snapshot_every_days": 7}}
    )
    return labels.plan_cutoffs(config, CUT, lambda cuts: np.array(sizes[: len(cuts)]))


def test_planning_stops_at_the_first_small_cutoff():
    # 99 < MIN_SNAPSHOT_ROWS (100) stops the plan, even though an older cut-off is large
    assert labels.MIN_SNAPSHOT_ROWS == 100
    assert _plan(4, [150, 120, 99, 500]) == [
        np.datetime64("2024-01-10", "ns"),
        np.datetime64("2024-01-03", "ns"),
    ]
    assert len(_plan(4, [100, 100, 100, 100])) == 4  # exactly the minimum is enough


def test_planning_refuses_an_empty_newest_population():
    with pytest.raises(ContractError, match="label.as_of"):
        _plan(4, [0, 500, 500, 500])


def test_label_crm_from_a_given_as_of():
    config = TrainConfig.model_validate(
        {"label": {"as_of": "2024-01-10", "horizon_days": 30, "snapshots": 2}}
    )
    lab = labels.label(_crm(_leads()), config)  # the older cut-off has 4 < 100 leads: one cut
    assert lab.leads["lead_id"].tolist() == ["a", "b", "g"]
    assert lab.y.tolist() == [1.0, 0.0, 0.0]
    assert lab.snapshot.tolist() == [0, 0, 0]
    assert lab.order.tolist() == [0, 1, 2]  # same created_at and cut-off: stable
    assert lab.summary["cutoffs"] == ["2024-01-10"]
    assert lab.summary["rows"] == 3 and lab.summary["conversion_rate"] == 0.3333


def test_data_now_and_the_cutoffs_derived_from_it():
    stamps = [T("2024-03-01"), pd.NaT, T("2024-03-05 13:00")]
    assert labels.data_now(stamps) == T("2024-03-05 13:00")
    # 2024-03-05 13:00 - 30 days = 2024-02-04 13:00, rounded up to the next midnight
    assert labels.training_cutoff(stamps, 30) == T("2024-02-05")
    assert labels.training_cutoff([T("2024-03-05")], 30) == T("2024-02-04")  # already midnight
    assert labels.scoring_cutoff(stamps) == T("2024-03-05 13:00:01")


def test_activity_stamps_count_conversions_only_for_training():
    events = pd.DataFrame({"lead_id": ["a"], "occurred_at": pd.to_datetime(["2024-01-15 08:00"])})
    data = _crm(_leads(), events)
    # latest: created 2024-01-11 (f), event 2024-01-15 08:00, conversion 2024-02-09 00:00:01 (b)
    assert labels.data_now(labels.activity_stamps(data, outcomes=False)) == T("2024-01-15 08:00")
    assert labels.crm_cutoff(data, 30) == T("2024-01-11")  # 2024-02-09 00:00:01 - 30 d, ceil


def test_one_outcome_only_is_a_contract_error():
    labels.require_both_outcomes(np.array([0.0, 1.0]), "x.csv")
    with pytest.raises(ContractError, match=r"x.csv: .*same outcome \(1\)"):
        labels.require_both_outcomes(np.array([1.0, 1.0]), "x.csv")
