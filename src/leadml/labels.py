"""Labels: which leads a model learns from at each cut-off, and whether they converted.

A CRM row exists for a lead and a cut-off when the lead was created before the cut-off and
had not converted yet; its label is a conversion within `horizon_days` after the cut-off
(the edge included). A flat export is one row per lead with its target as given.

The data's "now" lives here too, for every engine: `data_now` is the latest activity in the
data, `training_cutoff` the newest cut-off a full horizon fits before it, `scoring_cutoff`
the moment just after it (scores as of the data's "now").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from leadml import dataset, values
from leadml.config import TrainConfig
from leadml.errors import ContractError

MIN_SNAPSHOT_ROWS = 100  # an older cut-off with fewer leads in its population is not used
AUTO_SNAPSHOT_ROWS = 200_000  # snapshots: auto aims at about this many rows
LABEL_COLUMNS = ["_as_of", "_snapshot", "_y"]


@dataclass
class Labelled:
    """The rows to learn from (one per lead and cut-off), their labels and the order to split in."""

    leads: pd.DataFrame
    events: pd.DataFrame | None
    y: np.ndarray
    as_of: np.ndarray | None  # cut-off per row (CRM)
    snapshot: np.ndarray | None  # 0 = newest cut-off (CRM)
    order: np.ndarray | None  # time order (oldest first) when the data has dates
    summary: dict


# ---- the data's "now" ----------------------------------------------------------------------


def data_now(stamps: Iterable[Any]) -> pd.Timestamp:
    """The latest of `stamps` (missing ones ignored): the data's "now"."""
    return max(pd.Timestamp(s) for s in stamps if pd.notna(s))


def activity_stamps(data: dataset.LeadData, outcomes: bool) -> list[Any]:
    """The latest lead creation and event (and conversion, with `outcomes`) of CRM tables."""
    stamps = [data.leads["created_at"].max()]
    if outcomes and "converted_at" in data.leads:
        stamps.append(data.leads["converted_at"].max())
    if data.events is not None and len(data.events):
        stamps.append(data.events["occurred_at"].max())
    return stamps


def training_cutoff(stamps: Iterable[Any], horizon_days: int) -> pd.Timestamp:
    """The data's "now" minus the horizon, rounded up to midnight: the newest cut-off whose
    outcomes are all known."""
    return (data_now(stamps) - pd.Timedelta(days=horizon_days)).ceil("D")


def scoring_cutoff(stamps: Iterable[Any]) -> pd.Timestamp:
    """Default cut-off for scoring: just after the data's "now", which is never later than
    the run's own time (later rows are rejected as in the future)."""
    return data_now(stamps) + pd.Timedelta(seconds=1)


def crm_cutoff(data: dataset.LeadData, horizon_days: int) -> pd.Timestamp:
    """The newest training cut-off of CRM tables in memory (see `training_cutoff`)."""
    return training_cutoff(activity_stamps(data, outcomes=True), horizon_days)


# ---- the population at a cut-off ------------------------------------------------------------


def population(
    leads: pd.DataFrame, cut: np.datetime64, horizon: np.timedelta64
) -> tuple[np.ndarray, np.ndarray]:
    """Leads that exist and have not converted at `cut`, and whether they convert within the
    horizon (a conversion at exactly `cut + horizon` counts)."""
    conv = leads["converted"].to_numpy(float) == 1
    conv_at = leads["converted_at"].to_numpy("datetime64[ns]")
    created = leads["created_at"].to_numpy("datetime64[ns]")
    pop = (created < cut) & ~(conv & (conv_at <= cut))
    y = conv & (conv_at > cut) & (conv_at <= cut + horizon)
    return pop, y


def population_counts(leads: pd.DataFrame, cuts: list, horizon_days: int) -> np.ndarray:
    """How many leads are in the training population at each cut-off."""
    horizon = np.timedelta64(horizon_days, "D")
    return np.array([population(leads, np.datetime64(c, "ns"), horizon)[0].sum() for c in cuts])


def plan_cutoffs(
    config: TrainConfig, last: pd.Timestamp, count: Callable[[list], np.ndarray]
) -> list[np.datetime64]:
    """The cut-offs to learn from, newest first. `count(cuts)` gives the population at each
    cut-off (over all leads, however they are stored). Older cut-offs stop at the first one
    with fewer than `MIN_SNAPSHOT_ROWS` leads."""
    lc = config.label
    every = pd.Timedelta(days=lc.snapshot_every_days or lc.horizon_days)
    if lc.snapshots == "auto":
        pop0 = int(count([last.to_datetime64()])[0])
        wanted = int(np.clip(np.ceil(AUTO_SNAPSHOT_ROWS / max(pop0, 1)), 4, 8))
    else:
        wanted = lc.snapshots
    cuts = [(last - j * every).to_datetime64().astype("datetime64[ns]") for j in range(wanted)]
    sizes = count(cuts)
    if sizes[0] == 0:
        raise ContractError(
            f"no lead was created before the cut-off {last} without having converted already; set label.as_of to a later date"
        )
    kept = [cuts[0]]
    for j in range(1, wanted):
        if sizes[j] < MIN_SNAPSHOT_ROWS:
            break
        kept.append(cuts[j])
    return kept


def label_rows(leads: pd.DataFrame, cuts: list, horizon_days: int) -> pd.DataFrame:
    """One row per lead and cut-off where the lead is in the population, with the cut-off
    (`_as_of`), its rank (`_snapshot`, 0 = newest) and the label (`_y`)."""
    horizon = np.timedelta64(horizon_days, "D")
    frames = []
    for j, cut in enumerate(cuts):
        pop, y = population(leads, np.datetime64(cut, "ns"), horizon)
        n = int(pop.sum())
        frames.append(
            leads.loc[pop].assign(
                _as_of=np.full(n, cut, dtype="datetime64[ns]"),
                _snapshot=np.full(n, j),
                _y=y[pop].astype(float),
            )
        )
    return pd.concat(frames, ignore_index=True)


# ---- labelled rows --------------------------------------------------------------------------


def label(data: dataset.LeadData, config: TrainConfig) -> Labelled:
    """Training rows and labels.

    Flat exports: one row per lead, the target as given. CRM tables: one row per lead and
    cut-off (see `population`). Cut-offs go back from `as_of` every `snapshot_every_days`,
    so the newest ones can be held out as a genuinely later period.
    """
    if data.kind == "flat":
        return _label_flat(data)
    lc = config.label
    last = (
        values.timestamp(lc.as_of, "label.as_of") if lc.as_of else crm_cutoff(data, lc.horizon_days)
    )
    cuts = plan_cutoffs(config, last, lambda c: population_counts(data.leads, c, lc.horizon_days))
    rows = label_rows(data.leads, cuts, lc.horizon_days)
    as_of, snapshot, y = (rows.pop(c).to_numpy() for c in LABEL_COLUMNS)
    order = np.lexsort((rows["created_at"].to_numpy(), as_of))
    summary = crm_summary(
        config,
        cuts,
        len(y),
        rows["lead_id"].nunique(),
        len(data.events) if data.events is not None else 0,
        rows["created_at"].min(),
        rows["created_at"].max(),
        float(y.mean()),
    )
    return Labelled(rows, data.events, y.astype(float), as_of, snapshot, order, summary)


def _label_flat(data: dataset.LeadData) -> Labelled:
    order = None
    if data.date_column:
        order = np.argsort(data.leads[data.date_column].to_numpy(), kind="stable")
    y = data.leads[data.target].to_numpy(float)
    summary: dict[str, Any] = {"rows": len(y), "conversion_rate": round(float(y.mean()), 4)}
    if data.date_column:
        summary |= {
            "date_min": str(data.leads[data.date_column].min()),
            "date_max": str(data.leads[data.date_column].max()),
        }
    return Labelled(data.leads, None, y, None, None, order, summary)


def require_both_outcomes(y: np.ndarray, where: str) -> None:
    """A model needs conversions and non-conversions among the rows it learns from."""
    if len(np.unique(y)) < 2:
        raise ContractError(
            f"{where}: every lead in the training population has the same outcome ({y[0]:.0f}); a model needs both conversions and non-conversions"
        )


def crm_summary(
    config: TrainConfig, cuts: list, rows: int, leads: int, events: int, first, last, rate: float
) -> dict[str, Any]:
    """What the model card says about labelled CRM rows."""
    return {
        "rows": int(rows),
        "leads": int(leads),
        "as_of": str(pd.Timestamp(cuts[0])),
        "cutoffs": [str(pd.Timestamp(c).date()) for c in cuts],
        "horizon_days": config.label.horizon_days,
        "events": int(events),
        "date_min": str(first),
        "date_max": str(last),
        "conversion_rate": round(rate, 4),
    }
