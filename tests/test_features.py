"""Feature tests through the one feature function: the point-in-time rule, unseen categories,
flat column inference and rejects, monotone constraints. (Title, region and category parsing:
test_fit_features.py; engagement counts worked out by hand: test_engagement.py.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml import contract, dataset, features
from leadml.config import TrainConfig
from tests.conftest import make_flat

AS_OF = pd.Timestamp("2026-06-30")


@pytest.fixture(scope="module")
def crm(crm_dir):
    data = dataset.load(crm_dir)
    return data, features.fit_spec(data, TrainConfig())


def test_events_after_the_cutoff_never_change_a_feature(crm):
    data, spec = crm
    before = features.build_features(data.leads, data.events, spec, as_of=AS_OF).X
    rng = np.random.default_rng(0)
    n = 5000
    late = pd.DataFrame(
        {
            "lead_id": rng.choice(data.leads["lead_id"].to_numpy(), n),
            "occurred_at": AS_OF
            + pd.to_timedelta(rng.uniform(0, 60 * 86400, n), unit="s"),  # at or after the cut-off
            "event_type": pd.Categorical(
                rng.choice(contract.EVENT_TYPES, n), categories=contract.EVENT_TYPES
            ),
            "page": pd.Categorical(
                rng.choice(["pricing", "blog", ""], n), categories=("", *contract.PAGE_KINDS)
            ),
        }
    )
    after = features.build_features(
        data.leads, pd.concat([data.events, late], ignore_index=True), spec, as_of=AS_OF
    ).X
    pd.testing.assert_frame_equal(before, after)


def test_an_event_just_before_the_cutoff_does_count(crm):
    data, spec = crm
    lead = data.leads["lead_id"].iloc[0]
    one = pd.DataFrame(
        {
            "lead_id": [lead],
            "occurred_at": [AS_OF - pd.Timedelta(hours=1)],
            "event_type": pd.Categorical(["demo_request"], categories=contract.EVENT_TYPES),
            "page": pd.Categorical([""], categories=("", *contract.PAGE_KINDS)),
        }
    )
    base = features.build_features(data.leads.head(1), data.events, spec, as_of=AS_OF).X
    more = features.build_features(
        data.leads.head(1), pd.concat([data.events, one]), spec, as_of=AS_OF
    ).X
    assert more["demo_request_7d"].item() == base["demo_request_7d"].item() + 1
    assert more["days_since_last_intent"].item() == pytest.approx(1 / 24)


def test_events_older_than_the_observation_window_are_ignored(crm):
    data, spec = crm
    lead = data.leads["lead_id"].iloc[0]
    old = pd.DataFrame(
        {
            "lead_id": [lead] * 3,
            "occurred_at": [AS_OF - pd.Timedelta(days=spec.observation_days + 1)] * 3,
            "event_type": pd.Categorical(["email_click"] * 3, categories=contract.EVENT_TYPES),
            "page": pd.Categorical([""] * 3, categories=("", *contract.PAGE_KINDS)),
        }
    )
    base = features.build_features(data.leads.head(1), data.events, spec, as_of=AS_OF).X
    more = features.build_features(
        data.leads.head(1), pd.concat([data.events, old]), spec, as_of=AS_OF
    ).X
    pd.testing.assert_frame_equal(base, more)


def test_per_lead_cutoffs_equal_separate_calls(crm):
    data, spec = crm
    leads = data.leads.head(50)
    cuts = np.where(
        np.arange(50) % 2 == 0, np.datetime64("2026-06-30"), np.datetime64("2026-03-01")
    ).astype("datetime64[ns]")
    both = features.build_features(leads, data.events, spec, as_of=cuts).X
    even = features.build_features(leads.iloc[::2], data.events, spec, as_of=AS_OF).X
    odd = features.build_features(
        leads.iloc[1::2], data.events, spec, as_of=pd.Timestamp("2026-03-01")
    ).X
    pd.testing.assert_frame_equal(both.iloc[::2], even)
    pd.testing.assert_frame_equal(both.iloc[1::2], odd)


def test_the_same_lead_at_two_cutoffs(crm):
    data, spec = crm
    lead = data.leads.head(1)
    two = pd.concat([lead, lead], ignore_index=True)
    cuts = np.array(["2026-06-30", "2026-03-01"], dtype="datetime64[ns]")
    X = features.build_features(two, data.events, spec, as_of=cuts).X
    alone = features.build_features(lead, data.events, spec, as_of=pd.Timestamp("2026-03-01")).X
    np.testing.assert_array_equal(X.iloc[1].to_numpy(), alone.iloc[0].to_numpy())


def test_unseen_and_missing_categories(crm):
    data, spec = crm
    leads = data.leads.head(3).copy()
    leads["industry"] = ["Quantum Knitting", None, leads["industry"].iloc[2]]
    feats = features.build_features(leads, data.events, spec, as_of=AS_OF)
    ind = feats.X["industry"].to_numpy()
    assert ind[0] == len(spec.categories["industry"])  # "other" code, scored not refused
    assert np.isnan(ind[1])
    assert feats.unseen == {"industry": 1}


def test_flat_columns_are_typed_and_personal_data_left_out(flat_csv):
    data = dataset.load(flat_csv, target="won")
    spec = features.fit_spec(data, TrainConfig())
    kinds = {c.name: c.kind for c in spec.columns}
    assert kinds["web_visits"] == "numeric" and kinds["minutes_on_site"] == "numeric"
    assert kinds["newsletter"] == "binary" and kinds["plan_interest"] == "category"
    assert "contact_email" in spec.skipped and "personal" in spec.skipped["contact_email"]
    assert "customer_ref" in spec.skipped  # an id-like text column
    assert "won" not in kinds and "row_id" not in kinds


def test_a_yes_no_flag_named_like_email_is_consent_not_personal_data(tmp_path):
    """X Education's "Do Not Email" is a yes/no consent flag: a feature, unlike an address."""
    frame = make_flat(600, seed=4)
    frame["Do Not Email"] = np.where(np.arange(600) % 5 == 0, "Yes", "No")
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    spec = features.fit_spec(dataset.load(path, target="won"), TrainConfig())
    kinds = {c.name: c.kind for c in spec.columns}
    assert kinds["Do Not Email"] == "binary"
    assert "contact_email" in spec.skipped and "personal" in spec.skipped["contact_email"]


def test_flat_bad_number_rejects_only_that_row(flat_csv):
    data = dataset.load(flat_csv, target="won")
    spec = features.fit_spec(data, TrainConfig())
    leads = data.leads.copy()
    leads.loc[leads.index[4], "web_visits"] = "twelve"
    leads.loc[leads.index[9], "minutes_on_site"] = "inf"
    feats = features.build_features(leads, None, spec, source="export.csv")
    assert len(feats.X) == len(leads) - 2
    rej = feats.rejects.frame
    assert rej["row"].tolist() == [5, 10]
    assert rej["field"].tolist() == ["web_visits", "minutes_on_site"]
    assert set(rej["reason"]) == {"not a finite number"}


def test_monotone_constraints_follow_the_direction_of_behaviour(crm):
    _, spec = crm
    mono = dict(zip(spec.feature_names, spec.monotone_constraints(), strict=True))
    assert mono["pricing_view_30d"] == 1 and mono["demo_request_decayed"] == 1
    assert (
        mono["unsubscribe_30d"] == -1
        and mono["bounced"] == -1
        and mono["days_since_last_event"] == -1
    )
    assert mono["seniority"] == 0 and mono["lead_age_days"] == 0


def test_request_timestamps_agree_with_the_file_path():
    from datetime import UTC, datetime, timedelta, timezone

    from leadml.records import timestamps

    stamps = [
        datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=5))),
        None,
        datetime(2026, 3, 1, 12),
        datetime(2026, 3, 1, 7, tzinfo=UTC),
    ]
    small = timestamps(stamps)
    large = timestamps(stamps * 30)[:4]
    assert np.array_equal(small, large, equal_nan=True)
    assert str(small[0]) == str(small[3]) == "2026-03-01T07:00:00.000000000" and np.isnat(small[1])
