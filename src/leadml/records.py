"""Raw lead records <-> the typed tables the feature function reads: the one adapter.

Leads arrive as records in three places: the service's validated request leads (dicts with
their events nested), the MLflow pyfunc's input frame and a notebook's or script's frame of
records (an `events` column holding each lead's activity as a list or its JSON, an optional
`as_of`). Each becomes the same `Tables` (leads, events, as_of) that `leadml score` reads
from files, so every path reaches `features.build_features` with the same dtypes; inside,
everything speaks tables. `from_tables` goes back, for MLflow's input example and tests.

Cheap for one lead as well as for thousands: the service calls it on every request.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from leadml.contract import EVENT_TYPES, PAGE_KINDS, PROFILE_COLUMNS
from leadml.values import utc_now

if TYPE_CHECKING:
    from leadml.features import FeatureSpec

_STAMP = "%Y-%m-%dT%H:%M:%S"
# the profile fields of a CRM lead, in the order the request frame has always had them
_CRM_INPUTS = sorted(PROFILE_COLUMNS)


class Tables(NamedTuple):
    """What the feature function reads: leads, their events and each lead's cut-off (CRM)."""

    leads: pd.DataFrame
    events: pd.DataFrame | None
    as_of: np.ndarray | None


def to_tables(frame: pd.DataFrame, crm: bool) -> Tables:
    """A frame of lead records -> tables (leads, events, as_of).

    CRM rows may carry their recent activity in an `events` column (a JSON string or a list
    of {occurred_at, event_type, page} per lead) and a cut-off in `as_of` (now when missing).
    Flat rows are the leads table as they are.
    """
    if not crm:
        return Tables(frame, None, None)
    leads = frame.drop(columns=[c for c in ("events", "as_of") if c in frame])
    leads = leads.reset_index(drop=True)
    if "lead_id" not in leads:
        leads.insert(0, "lead_id", np.arange(1, len(leads) + 1).astype(str))
    for col in PROFILE_COLUMNS + ["created_at"]:
        if col not in leads:
            leads[col] = None
    as_of = as_of_array(frame["as_of"].tolist() if "as_of" in frame else [None] * len(leads))
    per_lead = frame["events"].tolist() if "events" in frame else [[]] * len(leads)
    return Tables(leads, events_table(leads["lead_id"].tolist(), per_lead), as_of)


def request_tables(
    spec: FeatureSpec,
    leads: list[dict],
    default_ids: list[str],
    missing: frozenset[str] = frozenset(),
) -> Tables:
    """The service's validated request leads (dicts keyed by input field) -> tables.

    CRM leads are numbered by position, not by their ids, so that the same lead sent by two
    concurrent requests is scored twice, independently, in one pass. A flat model without an
    id column takes `default_ids` (the lead's place in its request) where no row_id is sent.
    Flat models: text that training read as missing (`missing`, e.g. "Select") is missing here.
    """
    if spec.kind == "crm":
        stamps = timestamps([lead["created_at"] for lead in leads])
        profile = {n: pd.Series([lead[n] for lead in leads], dtype=object) for n in _CRM_INPUTS}
        frame = pd.DataFrame({"lead_id": np.arange(len(leads)), "created_at": stamps} | profile)
        events = events_table(list(range(len(leads))), [lead["events"] for lead in leads])
        return Tables(frame, events, as_of_array([lead["as_of"] for lead in leads]))
    columns: dict[str, Any] = {}
    if spec.id_column == "row_id":  # no id in the model: the lead's place in the request
        columns["row_id"] = [
            lead.get("row_id") or d for lead, d in zip(leads, default_ids, strict=True)
        ]
    else:
        columns[spec.id_column] = [lead[spec.id_column] for lead in leads]
    for c in spec.columns:
        values = [lead[c.name] for lead in leads]
        if c.kind in ("category", "title") and missing:
            values = _missing_as_none(values, missing)
        columns[c.name] = np.array(values, dtype=np.float64) if c.kind == "numeric" else values
    return Tables(pd.DataFrame(columns), None, None)


def from_tables(leads: pd.DataFrame, events: pd.DataFrame | None, as_of) -> pd.DataFrame:
    """The inverse of `to_tables`: lead rows with an `events` JSON column and `as_of`."""
    out = leads.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime(_STAMP)
    grouped: dict = {}
    if events is not None and len(events):
        ev = events.assign(occurred_at=pd.to_datetime(events["occurred_at"]).dt.strftime(_STAMP))
        for lead_id, part in ev.groupby("lead_id", sort=False, observed=True):
            grouped[str(lead_id)] = (
                part[["occurred_at", "event_type", "page"]].astype(str).to_dict("records")
            )
    out["events"] = [json.dumps(grouped.get(str(i), [])) for i in out["lead_id"]]
    out["as_of"] = (
        pd.Timestamp(as_of).strftime(_STAMP)
        if not isinstance(as_of, np.ndarray | pd.Series)
        else pd.to_datetime(as_of).strftime(_STAMP)
    )
    return out


def as_of_array(values: list) -> np.ndarray:
    """Cut-offs as datetime64[ns]; now (UTC) where none is given."""
    now = np.datetime64(utc_now().to_datetime64(), "ns")
    given = timestamps(values)
    return np.where(np.isnat(given), now, given)


def events_table(lead_ids: list, per_lead: list) -> pd.DataFrame:
    """Each lead's events (a list of {occurred_at, event_type, page}, or its JSON) as one table."""
    lists = [
        (json.loads(evs) if evs.strip() else []) if isinstance(evs, str) else evs
        for evs in per_lead
    ]
    lists = [evs if isinstance(evs, list | tuple) else [] for evs in lists]
    owners = np.repeat(np.array(lead_ids, dtype=object), [len(evs) for evs in lists])
    flat = [e for evs in lists for e in evs]
    stamps = [e.get("occurred_at") for e in flat]
    types = [e.get("event_type") for e in flat]
    pages = [e.get("page") for e in flat]
    page_kinds = ("", *PAGE_KINDS)
    return pd.DataFrame(
        {
            "lead_id": owners,
            "occurred_at": timestamps(stamps),
            "event_type": pd.Categorical.from_codes(_code_list(types, EVENT_TYPES), EVENT_TYPES),
            "page": pd.Categorical.from_codes(_code_list(pages, page_kinds), page_kinds),
        }
    )


def timestamps(values: list) -> np.ndarray:
    """datetime64[ns] (naive UTC; NaT where missing or unreadable) from datetimes or text."""
    if len(values) <= 64 and all(v is None or isinstance(v, datetime) for v in values):
        # a request's validated datetimes: skip pandas' fixed cost
        naive = [v.astimezone(UTC).replace(tzinfo=None) if v and v.tzinfo else v for v in values]
        return np.array(naive, dtype="datetime64[ns]")
    stamps = pd.to_datetime(pd.Series(values, dtype=object), errors="coerce", utc=True)
    return stamps.dt.tz_localize(None).to_numpy("datetime64[ns]")


def _code_list(values: list, vocabulary) -> np.ndarray:
    """Position of each value in `vocabulary` (case and spaces ignored); -1 when absent."""
    index = {v: i for i, v in enumerate(vocabulary)}
    codes, uniques = pd.factorize(np.array(values, dtype=object), use_na_sentinel=True)
    lookup = [index.get(u.strip().lower(), -1) if isinstance(u, str) else -1 for u in uniques]
    return np.array([*lookup, -1], dtype=np.int64)[codes]  # code -1 (missing) -> -1


def _missing_as_none(values: list, missing: frozenset[str]) -> list:
    marked = {v for v in set(values) if isinstance(v, str) and v.strip() in missing}
    return [None if v in marked else v for v in values] if marked else values
