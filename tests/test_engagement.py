"""Engagement features on a hand-made handful of events: counts in windows, decay, recency,
trend, click rate, the as-of cut (nothing at or after it counts) and the observation window.

Every expected value is worked out by hand from the events below (half-life 14 days,
windows 7/30/90 days, observation window 180 days, velocity 14 days)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadml import contract, engagement
from leadml.engagement import KINDS, engagement_names
from leadml.errors import ContractError
from leadml.features import FeatureSpec

CUT = pd.Timestamp("2026-06-30")
SPEC = FeatureSpec(
    kind="crm",
    id_column="lead_id",
    feature_names=[],
    categorical=[],
    categories={},
    labels={},
    windows_days=[7, 30, 90],
    observation_days=180,
    half_life_days=14.0,
    velocity_days=14,
)
LEADS = pd.DataFrame({"lead_id": ["L1", "L2", "L3"]})
# (lead, days before the cut-off, event type, page)
EVENTS = [
    ("L1", 1, "page_view", "pricing"),
    ("L1", 10, "page_view", "pricing"),
    ("L1", 40, "page_view", "blog"),
    ("L1", 3, "page_view", ""),  # a page view of no known kind: other_view
    ("L1", 2, "email_open", ""),
    ("L1", 20, "email_open", ""),
    ("L1", 5, "email_click", ""),
    ("L1", 100, "demo_request", ""),  # in the observation window, outside every count window
    ("L1", 200, "webinar", ""),  # before the observation window: ignored
    ("L1", 0, "trial_start", ""),  # at the cut-off: not strictly before, ignored
    ("L1", -3, "cart_add", ""),  # after the cut-off: ignored
    ("L2", 3, "unsubscribe", ""),
    ("L2", 4, "bounce", ""),
    ("L9", 1, "demo_request", ""),  # no such lead: ignored
]


def _events(rows=EVENTS, categorical: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "lead_id": [r[0] for r in rows],
            "occurred_at": [CUT - pd.Timedelta(days=r[1]) for r in rows],
            "event_type": [r[2] for r in rows],
            "page": [r[3] for r in rows],
        }
    )
    if categorical:  # as dataset.load reads them
        frame["event_type"] = pd.Categorical(frame["event_type"], categories=contract.EVENT_TYPES)
        frame["page"] = pd.Categorical(frame["page"], categories=("", *contract.PAGE_KINDS))
    return frame


def _table(leads=LEADS, events=None, as_of=CUT) -> pd.DataFrame:
    events = _events() if events is None else events
    cut = engagement.as_of_array(leads, as_of)
    out = engagement.engagement(leads, events, cut, SPEC)
    return pd.DataFrame(out, columns=engagement_names(SPEC.windows_days), index=leads["lead_id"])


def _decay(*days: float) -> float:
    return sum(2.0 ** (-d / 14.0) for d in days)


def test_names_are_kind_major_then_the_summaries():
    names = engagement_names([7, 30])
    assert names[:4] == [
        "pricing_view_7d",
        "pricing_view_30d",
        "product_view_7d",
        "product_view_30d",
    ]
    assert names[2 * len(KINDS)] == "pricing_view_decayed"
    assert names[-8:] == [
        "engagement_decayed",
        "intent_decayed",
        "days_since_last_event",
        "days_since_last_intent",
        "velocity",
        "email_click_rate",
        "unsubscribed",
        "bounced",
    ]


def test_counts_per_kind_and_window():
    row = _table().loc["L1"]
    assert [row[f"pricing_view_{w}d"] for w in (7, 30, 90)] == [1, 2, 2]
    assert [row[f"blog_view_{w}d"] for w in (7, 30, 90)] == [0, 0, 1]
    assert [row[f"other_view_{w}d"] for w in (7, 30, 90)] == [1, 1, 1]
    assert [row[f"email_open_{w}d"] for w in (7, 30, 90)] == [1, 2, 2]
    assert [row[f"email_click_{w}d"] for w in (7, 30, 90)] == [1, 1, 1]
    assert [row[f"demo_request_{w}d"] for w in (7, 30, 90)] == [0, 0, 0]
    assert row["product_view_90d"] == 0


def test_nothing_at_or_after_the_cut_off_and_nothing_before_the_window_counts():
    row = _table().loc["L1"]
    assert row["trial_start_90d"] == 0 and row["trial_start_decayed"] == 0  # at the cut-off
    assert row["cart_add_7d"] == 0 and row["cart_add_decayed"] == 0  # after it
    assert row["webinar_90d"] == 0 and row["webinar_decayed"] == 0  # 200 days old
    # and taking those three events away changes nothing at all
    kept = [e for e in EVENTS if e[0] == "L1" and 0 < e[1] <= 180]
    pd.testing.assert_series_equal(_table(events=_events(kept)).loc["L1"], _table().loc["L1"])


def test_an_event_one_half_life_old_weighs_one_half():
    one = _events([("L1", 14, "page_view", "product")])
    row = _table(events=one).loc["L1"]
    assert row["product_view_decayed"] == pytest.approx(0.5)
    assert row["engagement_decayed"] == pytest.approx(0.5) and row["intent_decayed"] == 0


def test_decayed_sums_engagement_and_intent():
    row = _table().loc["L1"]
    assert row["pricing_view_decayed"] == pytest.approx(_decay(1, 10))
    assert row["email_open_decayed"] == pytest.approx(_decay(2, 20))
    assert row["demo_request_decayed"] == pytest.approx(_decay(100))  # in the window: counts
    everything = _decay(1, 10, 40, 3, 2, 20, 5, 100)
    assert row["engagement_decayed"] == pytest.approx(everything)
    assert row["intent_decayed"] == pytest.approx(_decay(1, 10, 100))  # pricing + demo


def test_recency_trend_and_click_rate():
    t = _table()
    l1, l2, l3 = t.loc["L1"], t.loc["L2"], t.loc["L3"]
    assert l1["days_since_last_event"] == pytest.approx(1)
    assert l1["days_since_last_intent"] == pytest.approx(1)  # the pricing view
    # 5 events in the last 14 days (ages 1, 10, 3, 2, 5), 1 in the 14 before (age 20)
    assert l1["velocity"] == pytest.approx(np.log(6 / 2))
    assert l1["email_click_rate"] == pytest.approx(1 / (2 + 1))
    # unsubscribes and bounces are activity, but never buying intent
    assert l2["days_since_last_event"] == pytest.approx(3)
    assert l2["days_since_last_intent"] == SPEC.observation_days
    # no activity reads as "as stale as the window", not as missing
    assert l3["days_since_last_event"] == l3["days_since_last_intent"] == SPEC.observation_days
    assert l3["velocity"] == 0 and l3["email_click_rate"] == 0


def test_unsubscribed_and_bounced_flags_and_their_negative_kinds_stay_out_of_engagement():
    l2 = _table().loc["L2"]
    assert l2["unsubscribed"] == 1 and l2["bounced"] == 1
    assert l2["unsubscribe_7d"] == 1 and l2["bounce_7d"] == 1
    assert l2["engagement_decayed"] == 0
    assert _table().loc["L1", "unsubscribed"] == 0


def test_an_unsubscribe_is_a_state_it_counts_before_the_observation_window_too():
    old = _events([("L1", 300, "unsubscribe", "")])
    row = _table(events=old).loc["L1"]
    assert row["unsubscribed"] == 1
    assert row["unsubscribe_90d"] == 0 and row["unsubscribe_decayed"] == 0


def test_a_lead_without_events_and_no_events_table_give_the_same_row():
    t = _table()
    none = engagement.engagement(LEADS, None, engagement.as_of_array(LEADS, CUT), SPEC)
    np.testing.assert_array_equal(none[2], t.loc["L3"].to_numpy())
    np.testing.assert_array_equal(none[0], none[2])


def test_plain_text_event_columns_give_the_same_features_as_categoricals():
    plain = _table(events=_events(categorical=False))
    pd.testing.assert_frame_equal(plain, _table())


def test_unknown_and_missing_event_types_are_ignored():
    plain = _events([("L1", 2, "fax_sent", ""), ("L1", 2, "email_open", "")], categorical=False)
    missing = _events([("L1", 2, None, ""), ("L1", 2, "email_open", "")])
    assert missing["event_type"].isna().iloc[0]
    for events in (plain, missing):
        row = _table(events=events).loc["L1"]
        assert row["email_open_7d"] == 1 and row["engagement_decayed"] == pytest.approx(_decay(2))


def test_each_lead_has_its_own_cut_off():
    week_before = CUT - pd.Timedelta(days=7)
    t = _table(as_of=[week_before, CUT, CUT])
    l1 = t.loc["L1"]
    # a week earlier the pricing view of day 1 had not happened, the one of day 10 was 3 days old
    assert l1["pricing_view_7d"] == 1 and l1["pricing_view_30d"] == 1
    assert l1["pricing_view_decayed"] == pytest.approx(_decay(3))
    # the events of days 1, 2, 3 and 5 were still to come; the day-10 view is the latest
    assert l1["days_since_last_event"] == pytest.approx(3)
    assert l1["email_open_30d"] == 1  # only the day-20 open, 13 days before
    pd.testing.assert_series_equal(t.loc["L2"], _table().loc["L2"])


def test_the_same_lead_at_two_cut_offs_counts_each_event_once_per_row():
    two = pd.DataFrame({"lead_id": ["L1", "L1"]})
    t = _table(leads=two, as_of=[CUT, CUT - pd.Timedelta(days=7)])
    alone_now = _table(leads=LEADS.iloc[:1]).iloc[0]
    alone_before = _table(leads=LEADS.iloc[:1], as_of=CUT - pd.Timedelta(days=7)).iloc[0]
    np.testing.assert_array_equal(t.iloc[0].to_numpy(), alone_now.to_numpy())
    np.testing.assert_array_equal(t.iloc[1].to_numpy(), alone_before.to_numpy())


def test_the_same_lead_twice_at_one_cut_off_is_a_contract_error():
    two = pd.DataFrame({"lead_id": ["L1", "L1"]})
    with pytest.raises(ContractError, match="'L1' appears twice with the same cut-off"):
        _table(leads=two)


def test_as_of_is_required_and_broadcast_or_taken_per_lead():
    with pytest.raises(ContractError, match="need a cut-off"):
        engagement.as_of_array(LEADS, None)
    one = engagement.as_of_array(LEADS, "2026-06-30")
    assert one.dtype == np.dtype("datetime64[ns]") and len(one) == 3 and len(set(one)) == 1
    per = engagement.as_of_array(LEADS, ["2026-06-30", "2026-06-01", "2026-05-01"])
    assert str(per[1])[:10] == "2026-06-01"


def test_days_since_activity_per_kind_within_the_window():
    cut = engagement.as_of_array(LEADS, CUT)
    days = pd.DataFrame(
        engagement.days_since_activity(LEADS, _events(), cut, SPEC),
        columns=KINDS,
        index=LEADS["lead_id"],
    )
    l1 = days.loc["L1"]
    assert l1["pricing_view"] == pytest.approx(1) and l1["blog_view"] == pytest.approx(40)
    assert l1["demo_request"] == pytest.approx(100)
    assert l1["webinar"] == SPEC.observation_days  # 200 days old: outside the window
    assert l1["trial_start"] == l1["cart_add"] == SPEC.observation_days  # at / after the cut
    assert (days.loc["L3"] == SPEC.observation_days).all()
    assert days.loc["L2", "unsubscribe"] == pytest.approx(3)
