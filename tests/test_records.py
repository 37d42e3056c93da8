"""records.py: raw lead records <-> the tables the feature function reads."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from leadml import dataset, records
from leadml.config import TrainConfig
from leadml.features import build_features, fit_spec


@pytest.fixture(scope="module")
def crm(tmp_path_factory, crm_small):
    """The CRM sample read as `leadml score` reads it, and the feature spec it gives."""
    from leadml import synth

    folder = tmp_path_factory.mktemp("records") / "crm"
    synth.write_crm(crm_small, folder, "csv")
    data = dataset.load(folder)
    return data, fit_spec(data, TrainConfig())


def test_records_round_trip_to_the_same_tables(crm):
    data, _ = crm
    leads = data.leads.head(25).reset_index(drop=True)
    events = data.events[data.events["lead_id"].isin(leads["lead_id"])]
    rows = records.from_tables(leads, events, pd.Timestamp("2026-06-30"))
    back = records.to_tables(rows, crm=True)
    assert back.leads["lead_id"].tolist() == leads["lead_id"].tolist()
    assert (back.as_of == np.datetime64("2026-06-30T00:00:00")).all()
    key = ["lead_id", "occurred_at", "event_type"]

    def rows_of(ev: pd.DataFrame) -> list[tuple]:
        return sorted(ev[key].astype(str).itertuples(index=False, name=None))

    assert len(back.events) == len(events) > 0
    assert rows_of(back.events) == rows_of(events)
    again = records.from_tables(back.leads, back.events, back.as_of)
    assert again["events"].map(json.loads).map(len).tolist() == (
        rows["events"].map(json.loads).map(len).tolist()
    )


def test_records_give_the_features_of_the_file(crm):
    """A lead sent as a record gets exactly the features it gets read from the files."""
    data, spec = crm
    leads = data.leads.head(30).reset_index(drop=True)
    events = data.events[data.events["lead_id"].isin(leads["lead_id"])]
    as_of = pd.Timestamp("2026-06-30")
    direct = build_features(leads, events, spec, as_of=as_of).X
    back = records.to_tables(records.from_tables(leads, events, as_of), crm=True)
    via_records = build_features(back.leads, back.events, spec, as_of=back.as_of).X
    np.testing.assert_array_equal(via_records.to_numpy(), direct.to_numpy())


def _request_leads(n: int = 3) -> list[dict]:
    stamp = datetime(2026, 6, 1, 10, tzinfo=UTC)
    happened = [
        (1, "page_view", "pricing"),
        (3, "email_open", None),
        (5, "demo_request", None),
        (9, "page_view", "blog"),
        (12, "email_click", None),
    ]
    events = [
        {"occurred_at": stamp.replace(day=d), "event_type": t, "page": p} for d, t, p in happened
    ]
    profile = {
        "created_at": datetime(2026, 1, 1),
        "job_title": "VP Sales",
        "company_size": "51-200",
        "industry": "Software",
        "country": "Germany",
        "lead_source": "Webinar",
    }
    return [
        {"lead_id": f"L{i}", **profile, "events": list(events), "as_of": datetime(2026, 6, 30)}
        for i in range(n)
    ]


def test_a_request_scores_the_same_whatever_the_order_of_its_events(crm):
    _, spec = crm
    leads = _request_leads()
    shuffled = [
        {**lead, "events": random.Random(i).sample(lead["events"], 5)}
        for i, lead in enumerate(leads)
    ]
    assert [e["occurred_at"] for e in shuffled[0]["events"]] != [
        e["occurred_at"] for e in leads[0]["events"]
    ]

    def features(leads: list[dict]) -> np.ndarray:
        tables = records.request_tables(spec, leads, ["1", "2", "3"])
        return build_features(tables.leads, tables.events, spec, as_of=tables.as_of).X.to_numpy()

    assert features(leads).shape[0] == 3
    np.testing.assert_array_equal(features(shuffled), features(leads))


def test_request_leads_are_numbered_by_place_so_repeats_stay_apart(crm):
    _, spec = crm
    leads = _request_leads(2)
    leads[1]["lead_id"] = leads[0]["lead_id"]  # the same lead in two merged requests
    tables = records.request_tables(spec, leads, ["1", "1"])
    assert tables.leads["lead_id"].tolist() == [0, 1]
    assert sorted(set(tables.events["lead_id"])) == [0, 1]
    assert str(tables.events["occurred_at"].dtype) == "datetime64[ns]"


def test_zoned_times_become_naive_utc():
    stamps = [datetime(2026, 6, 1, 12, tzinfo=UTC).astimezone(), None]
    out = records.timestamps(stamps)
    assert out[0] == np.datetime64("2026-06-01T12:00:00") and np.isnat(out[1])
    assert records.timestamps(["2026-06-01T14:00:00+02:00", "not a date"])[0] == out[0]


def test_rows_without_ids_events_or_as_of_get_defaults():
    frame = pd.DataFrame({"job_title": ["CTO", None], "events": ["", None]})
    tables = records.to_tables(frame, crm=True)
    assert tables.leads["lead_id"].tolist() == ["1", "2"]
    assert set(dataset.PROFILE_COLUMNS) <= set(tables.leads.columns)
    assert len(tables.events) == 0 and not np.isnat(tables.as_of).any()


def test_flat_rows_without_an_id_take_their_place_in_the_request():
    from leadml.features import ColumnSpec, FeatureSpec

    plan = ColumnSpec("plan", "category", ["Pro"])
    spec = FeatureSpec("flat", "row_id", ["plan"], ["plan"], {"plan": ["Pro"]}, {}, [plan])
    leads = [{"row_id": None, "plan": "Pro"}, {"row_id": "own", "plan": "Select"}]
    tables = records.request_tables(spec, leads, ["1", "2"], frozenset({"Select"}))
    assert tables.leads["row_id"].tolist() == ["1", "own"]
    assert tables.leads["plan"].iloc[0] == "Pro"
    assert pd.isna(tables.leads["plan"].iloc[1])  # read as missing, as in training
    assert tables.events is None and tables.as_of is None
