"""The synthetic CRM (`leadml.synth`): deterministic by seed, the input contract's shape,
a plausible conversion rate, events only of existing leads, and a truth without personal data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from leadml import contract, dataset, privacy, synth

N = 600


@pytest.fixture(scope="module")
def crm() -> synth.SynthResult:
    return synth.make_crm(N, seed=5)


def test_the_same_seed_draws_the_same_data_and_another_seed_other_data(crm):
    again = synth.make_crm(N, seed=5)
    pd.testing.assert_frame_equal(crm.leads, again.leads)
    pd.testing.assert_frame_equal(crm.events, again.events)
    pd.testing.assert_frame_equal(crm.truth, again.truth)
    assert crm.meta == again.meta
    other = synth.make_crm(N, seed=6)
    assert not crm.leads["job_title"].equals(other.leads["job_title"])
    assert not crm.events.equals(other.events)


def test_leads_and_events_have_the_columns_of_the_input_contract(crm):
    leads, events = crm.leads, crm.events
    wanted = contract.LEAD_COLUMNS + contract.OUTCOME_COLUMNS + contract.PROFILE_COLUMNS
    assert set(wanted) <= set(leads.columns)
    assert set(contract.EVENT_COLUMNS) <= set(events.columns) and "page" in events
    assert len(leads) == N and leads["lead_id"].is_unique
    assert set(events["event_type"].unique()) <= set(contract.EVENT_TYPES)
    pages = set(events.loc[events["event_type"] == "page_view", "page"].unique())
    assert pages <= set(contract.PAGE_KINDS)
    assert (events.loc[events["event_type"] != "page_view", "page"] == "").all()


def test_fewer_than_100_leads_is_refused():
    with pytest.raises(ValueError, match="at least 100"):
        synth.make_crm(99)


def test_every_lead_is_created_before_the_snapshot_and_converts_after_it_was_created(crm):
    leads = crm.leads
    assert (leads["created_at"] < synth.AS_OF).all()
    won = leads["converted"] == 1
    assert leads.loc[won, "converted_at"].notna().all()
    assert leads.loc[~won, "converted_at"].isna().all()
    assert (leads.loc[won, "converted_at"] > leads.loc[won, "created_at"]).all()
    horizon_end = synth.AS_OF + pd.Timedelta(days=synth.HORIZON_DAYS)
    assert (leads.loc[won, "converted_at"] <= horizon_end).all()


def test_the_conversion_rate_is_near_the_target_and_the_truth_is_a_probability(crm):
    rate = crm.meta["snapshot_conversion_rate"]
    assert abs(rate - synth.TARGET_RATE) < 0.05, rate
    p = crm.truth["true_probability"]
    assert ((p > 0) & (p < 1)).all()
    assert abs(p.mean() - rate) < 0.03  # the truth explains the outcomes it drew
    assert 0 < crm.meta["leads_converted"] < 1


def test_events_belong_to_existing_leads_and_fall_between_creation_and_horizon(crm):
    events = crm.events.merge(crm.leads[["lead_id", "created_at"]], on="lead_id", how="left")
    assert events["created_at"].notna().all()  # no event without its lead
    assert (events["occurred_at"] >= events["created_at"]).all()
    assert (events["occurred_at"] < synth.AS_OF + pd.Timedelta(days=synth.HORIZON_DAYS)).all()
    keys = list(zip(events["lead_id"], events["occurred_at"], strict=True))
    assert keys == sorted(keys)  # by lead, then time


def test_converters_request_a_demo_between_their_cut_off_and_their_conversion(crm):
    """The planted leak: a feature function that ignores the cut-off sees these requests."""
    won = crm.leads[crm.leads["converted"] == 1]
    demos = crm.events[crm.events["event_type"] == "demo_request"]
    late = demos.merge(won[["lead_id", "converted_at"]], on="lead_id")
    before = late["occurred_at"] < late["converted_at"]
    window = late["converted_at"] - late["occurred_at"] < pd.Timedelta(days=synth.HORIZON_DAYS)
    assert set(late.loc[before & window, "lead_id"]) == set(won["lead_id"])


def test_the_truth_is_about_leads_that_existed_at_each_snapshot(crm):
    truth = crm.truth.merge(crm.leads[["lead_id", "created_at"]], on="lead_id")
    assert len(truth) == len(crm.truth)
    assert (truth["created_at"] < pd.to_datetime(truth["as_of"])).all()
    assert set(crm.truth["as_of"]) <= {
        str((synth.AS_OF - pd.Timedelta(days=synth.HORIZON_DAYS * j)).date())
        for j in range(synth.N_SNAPSHOTS)
    }


def test_written_data_reads_back_without_rejects_and_its_truth_holds_no_personal_data(
    crm, tmp_path
):
    paths = synth.write_crm(crm, tmp_path, "csv")
    assert paths["leads"].name == "leads.csv" and paths["events"].name == "events.csv"
    data = dataset.load_crm(tmp_path)
    assert len(data.leads) == N and len(data.rejects) == 0
    assert data.read == {"leads": N, "events": len(crm.events)}
    truth, meta = synth.read_truth(tmp_path)
    assert list(truth.columns) == ["lead_id", "as_of", "true_probability", "converted"]
    assert meta == json.loads(json.dumps(crm.meta))
    # the leads carry names, emails and phones on purpose (to test privacy); the truth not
    assert privacy.looks_personal(crm.leads["email"].iloc[0])
    texts = [(tmp_path / "truth" / f).read_text() for f in ("truth.csv", "truth.json")]
    for value in (crm.leads["email"].iloc[0], crm.leads["phone"].iloc[0], "@"):
        assert all(value not in text for text in texts)


def test_rewriting_in_another_format_leaves_one_file_per_table(crm, tmp_path):
    synth.write_crm(crm, tmp_path, "csv")
    synth.write_crm(crm, tmp_path, "parquet", parts=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events", "leads.parquet", "truth"]
    parts = sorted((tmp_path / "events").iterdir())
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(3)]
    events = pd.concat(pd.read_parquet(p) for p in parts)
    assert len(events) == len(crm.events)
    np.testing.assert_array_equal(events["lead_id"], crm.events["lead_id"])


def test_events_in_parts_need_parquet_and_a_known_format(crm, tmp_path):
    with pytest.raises(ValueError, match="--format parquet"):
        synth.write_crm(crm, tmp_path, "csv", parts=2)
    with pytest.raises(ValueError, match="csv, parquet or auto"):
        synth.write_crm(crm, tmp_path, "xlsx")


def test_a_folder_without_a_truth_is_not_synthetic(tmp_path):
    assert synth.read_truth(tmp_path) is None
