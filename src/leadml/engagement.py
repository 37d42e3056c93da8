"""Engagement features: what the lead did before its cut-off.

Events are counted per kind (page views by kind of page, then the other event types) over
windows of days, decayed with a half-life, and summed into overall engagement and buying
intent; the days since the last activity and the recent trend follow. Only events strictly
before a lead's cut-off (`as_of`) and inside the observation window count, so nothing that
happened afterwards can leak into a score.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from leadml.contract import EVENT_TYPES, PAGE_KINDS
from leadml.errors import ContractError


class Windows(Protocol):
    """The time settings engagement is counted with (`features.FeatureSpec` has them): counts
    per window of days, a decay half-life, how far back events count, the trend's span."""

    windows_days: list[int]
    observation_days: int
    half_life_days: float
    velocity_days: int


# what the feature function counts: page views by kind of page, then the other event types
KINDS = [f"{page}_view" for page in PAGE_KINDS] + [t for t in EVENT_TYPES if t != "page_view"]
NEGATIVE_KINDS = ("unsubscribe", "bounce")
INTENT_KINDS = ("pricing_view", "demo_request", "trial_start", "cart_add")
# product usage: what a trial user does in the product (the PQL sub-score reads these)
USAGE_KINDS = ("trial_start", "activation", "feature_use", "seat_invite")
RATIO_FEATURES = ("velocity", "email_click_rate")
KIND_LABELS = {
    "pricing_view": "Pricing page views",
    "product_view": "Product page views",
    "blog_view": "Blog page views",
    "other_view": "Other page views",
    "email_open": "Email opens",
    "email_click": "Email clicks",
    "content_download": "Content downloads",
    "webinar": "Webinars",
    "form_submit": "Form submits",
    "demo_request": "Demo requests",
    "trial_start": "Trial starts",
    "cart_add": "Cart adds",
    "activation": "Product activations",
    "feature_use": "Key feature uses",
    "seat_invite": "Seats invited",
    "unsubscribe": "Unsubscribes",
    "bounce": "Email bounces",
}


def engagement_names(windows: list[int]) -> list[str]:
    names = [f"{k}_{w}d" for k in KINDS for w in windows] + [f"{k}_decayed" for k in KINDS]
    return names + [
        "engagement_decayed",
        "intent_decayed",
        "days_since_last_event",
        "days_since_last_intent",
        "velocity",
        "email_click_rate",
        "unsubscribed",
        "bounced",
    ]


def _index_in(values: pd.Series, vocabulary) -> np.ndarray:
    """Position of each value in `vocabulary` (-1 when absent); fast for categoricals."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        position = {v: i for i, v in enumerate(vocabulary)}
        lookup = np.array([position.get(str(c), -1) for c in values.cat.categories] + [-1])
        return lookup[values.cat.codes.to_numpy()].astype(np.int64)  # code -1 (NaN) -> -1
    return pd.Index(vocabulary).get_indexer(values.astype(str)).astype(np.int64)


def engagement(
    leads: pd.DataFrame, events: pd.DataFrame | None, as_of: np.ndarray, spec: Windows
) -> np.ndarray:
    """Engagement matrix (n_leads x engagement features) from events strictly before each lead's cut-off.

    The same lead may appear once per cut-off (training snapshots): rows are then handled
    one cut-off at a time, so each event is matched to exactly one row per cut-off.
    """
    ids = leads["lead_id"]
    if not ids.is_unique:
        out = np.zeros((len(leads), len(engagement_names(spec.windows_days))))
        for cut in np.unique(as_of):
            rows = np.flatnonzero(as_of == cut)
            sub = leads.iloc[rows]
            if not sub["lead_id"].is_unique:
                dup = sub["lead_id"][sub["lead_id"].duplicated()].iloc[0]
                raise ContractError(
                    f"lead_id {dup!r} appears twice with the same cut-off; each lead needs one row per as_of"
                )
            out[rows] = _engagement_unique(sub, events, as_of[rows], spec)
        return out
    return _engagement_unique(leads, events, as_of, spec)


def _event_ages(
    leads: pd.DataFrame, events: pd.DataFrame, as_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per event: its lead's row, its kind (index in KINDS), its age in days at that lead's
    cut-off, and whether it counts (a known lead and type, strictly before the cut-off)."""
    owner = pd.Index(leads["lead_id"]).get_indexer(events["lead_id"])
    etype = _index_in(events["event_type"], EVENT_TYPES)
    page = _index_in(events["page"], ("pricing", "product", "blog"))
    # kind index: page views split by page kind, other events shifted after the four page kinds
    kind = np.where(etype == 0, np.where(page >= 0, page, 3), etype + 3)
    when = events["occurred_at"].to_numpy("datetime64[ns]")
    valid = (owner >= 0) & (etype >= 0)
    cut = as_of[np.clip(owner, 0, None)]
    age = (cut - when).astype("timedelta64[s]").astype(np.float64) / 86400.0
    # strictly before the cut-off: nothing that happened later can leak
    before = valid & (age > 0) & ~np.isnan(age)
    return owner, kind, age, before


def days_since_activity(
    leads: pd.DataFrame, events: pd.DataFrame | None, as_of, spec: Windows
) -> np.ndarray:
    """Days since each lead's last activity of each kind (n x KINDS), within the observation
    window and strictly before the cut-off; the window's length when there was none.
    Point rules use it to let an activity's points fade."""
    n, K = len(leads), len(KINDS)
    out = np.full((n, K), np.inf)
    cut = as_of_array(leads, as_of)
    if events is not None and len(events):
        # a lead appears once per cut-off in training rows: match events one cut-off at a time
        for c in np.unique(cut) if not leads["lead_id"].is_unique else [None]:
            rows = np.arange(n) if c is None else np.flatnonzero(cut == c)
            owner, kind, age, before = _event_ages(leads.iloc[rows], events, cut[rows])
            keep = before & (age <= spec.observation_days)
            np.minimum.at(out, (rows[owner[keep]], kind[keep]), age[keep])
    out[np.isinf(out)] = spec.observation_days
    return out


def _engagement_unique(
    leads: pd.DataFrame, events: pd.DataFrame | None, as_of: np.ndarray, spec: Windows
) -> np.ndarray:
    n, K, windows = len(leads), len(KINDS), spec.windows_days
    out_names = engagement_names(windows)
    out = np.zeros((n, len(out_names)))
    counts: dict[int, np.ndarray]
    decayed: np.ndarray
    last_any: np.ndarray
    last_intent: np.ndarray
    recent: np.ndarray
    previous: np.ndarray
    unsub: np.ndarray
    bounced: np.ndarray
    if events is None or events.empty:
        counts = {w: np.zeros((n, K)) for w in windows}
        decayed = np.zeros((n, K))
        last_any = last_intent = np.full(n, float(spec.observation_days))
        recent = previous = unsub = bounced = np.zeros(n)
    else:
        owner, kind, age, before = _event_ages(leads, events, as_of)
        unsub = np.bincount(owner[before & (kind == KINDS.index("unsubscribe"))], minlength=n) > 0
        bounced = np.bincount(owner[before & (kind == KINDS.index("bounce"))], minlength=n) > 0
        inwin = before & (age <= spec.observation_days)
        o, k, a = owner[inwin], kind[inwin], age[inwin]
        flat_ix = o * K + k
        counts = {w: np.bincount(flat_ix[a <= w], minlength=n * K).reshape(n, K) for w in windows}
        decayed = np.bincount(
            flat_ix, weights=np.exp2(-a / spec.half_life_days), minlength=n * K
        ).reshape(n, K)
        last_any = np.full(n, np.inf)
        np.minimum.at(last_any, o, a)
        intent = np.isin(k, [KINDS.index(x) for x in INTENT_KINDS])
        last_intent = np.full(n, np.inf)
        np.minimum.at(last_intent, o[intent], a[intent])
        # no activity inside the window reads as "as stale as the window", not as missing, so
        # that one more event can only make a lead look more recent (monotone constraints)
        last_any[np.isinf(last_any)] = spec.observation_days
        last_intent[np.isinf(last_intent)] = spec.observation_days
        v = spec.velocity_days
        recent = np.bincount(o[a <= v], minlength=n)
        previous = np.bincount(o[(a > v) & (a <= 2 * v)], minlength=n)
    col = 0
    for w in windows:
        out[:, col : col + K] = counts[w]
        col += K
    # names are kind-major ({kind}_{w}d for each kind, then window): reorder the window-major blocks
    block = (
        out[:, : K * len(windows)]
        .reshape(n, len(windows), K)
        .transpose(0, 2, 1)
        .reshape(n, K * len(windows))
    )
    out[:, : K * len(windows)] = block
    out[:, col : col + K] = decayed
    col += K
    positive = [i for i, k in enumerate(KINDS) if k not in NEGATIVE_KINDS]
    out[:, col] = decayed[:, positive].sum(axis=1)
    out[:, col + 1] = decayed[:, [KINDS.index(x) for x in INTENT_KINDS]].sum(axis=1)
    out[:, col + 2] = last_any
    out[:, col + 3] = last_intent
    out[:, col + 4] = np.log((recent + 1.0) / (previous + 1.0))
    longest = counts[max(windows)]
    out[:, col + 5] = longest[:, KINDS.index("email_click")] / (
        longest[:, KINDS.index("email_open")] + 1.0
    )
    out[:, col + 6] = unsub
    out[:, col + 7] = bounced
    return out


def as_of_array(leads: pd.DataFrame, as_of) -> np.ndarray:
    if as_of is None:
        raise ContractError(
            "CRM features need a cut-off: pass as_of (a timestamp, or one per lead)"
        )
    if isinstance(as_of, pd.Series | np.ndarray | list):
        return pd.to_datetime(pd.Series(as_of)).to_numpy("datetime64[ns]")
    return np.full(len(leads), pd.Timestamp(as_of).to_datetime64().astype("datetime64[ns]"))
