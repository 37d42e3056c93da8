"""Looking at leads and at trained runs: what the notebooks call.

Data quality (the contract's rejects, missing values per column), conversion by segment on
the same labelled rows training uses, event timelines of a few leads, the leakage guard's
findings, and runs side by side (metrics, reliability, band backtest) from the MLflow store.
Nothing here trains or decides; every figure comes from the library's own steps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadml import contract, dataset, evaluate, labels, rules
from leadml.config import Settings, TrainConfig
from leadml.features import FeatureSpec, build_features, fit_spec

CRM_SEGMENTS = ["lead_source", "seniority", "company_size", "engagement_decayed"]
MAX_SEGMENTS = 4


def quality_report(data: dataset.LeadData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per lead column: type, missing share, distinct values (personal columns say so, never
    show values); and the rejected rows counted by table, file, field and reason."""
    personal = set(dataset.pii_columns(data.leads.columns))
    rows = []
    for col in data.leads.columns:
        values = data.leads[col]
        rows.append(
            {
                "column": col,
                "type": str(values.dtype),
                "missing": float(values.isna().mean()),
                "distinct": int(values.nunique()),
                "note": "personal data: never used" if col in personal else "",
            }
        )
    rej = data.rejects.frame
    keys = ["table", "file", "field", "reason"]
    summary = (
        rej.groupby(keys, sort=False).size().rename("rows").reset_index()
        if len(rej)
        else pd.DataFrame(columns=[*keys, "rows"])
    )
    return pd.DataFrame(rows), summary


def input_counts(data: dataset.LeadData) -> pd.DataFrame:
    """Rows read, used and rejected per table: rows in = used + rejected."""
    return pd.DataFrame(
        [
            {"table": t, "read": c.read, "used": c.used, "rejected": c.rejected_rows}
            for t, c in data.counts().items()
        ]
    )


def labelled_table(data: dataset.LeadData, config: TrainConfig):
    """The rows training learns from (lead x cut-off for CRM) with their outcome, and every
    field a rule or a segment can use (categories as names). Returns (table, y, spec)."""
    lab = labels.label(data, config)
    spec = fit_spec(data, config)
    table, _ = rules.rule_table(lab.leads, lab.events, spec, as_of=lab.as_of)
    y = lab.y[lab.leads.index.get_indexer(table.index)]
    return table, y, spec


def segment_columns(spec: FeatureSpec, table: pd.DataFrame) -> list[str]:
    """Segments worth a look: source, seniority, company size and engagement for CRM data;
    the categories with the fewest distinct values for a flat export."""
    if spec.kind == "crm":
        return [c for c in CRM_SEGMENTS if c in table]
    cats = [c for c in spec.categorical if c in table]
    return sorted(cats, key=lambda c: table[c].nunique())[:MAX_SEGMENTS]


def conversion_by(table: pd.DataFrame, y: np.ndarray, column: str, bins: int = 5) -> pd.DataFrame:
    """Leads, conversion and lift per value of a column (numbers cut into quantile bins)."""
    values = table[column]
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > 12:
        values = pd.qcut(
            values.rank(method="first"), bins, labels=[f"q{i + 1}" for i in range(bins)]
        )
    frame = pd.DataFrame({column: values.astype(object).fillna("(missing)").to_numpy(), "y": y})
    out = frame.groupby(column, sort=True).agg(leads=("y", "size"), conversion=("y", "mean"))
    out["lift"] = out["conversion"] / max(float(np.mean(y)), 1e-12)
    return out.reset_index()


def plot_conversion(tables: dict[str, pd.DataFrame]):
    """One bar chart per segment: conversion per value, with the overall rate as a line."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.4), squeeze=False)
    for ax, (name, t) in zip(axes[0], tables.items(), strict=True):
        ax.bar(t.iloc[:, 0].astype(str), t["conversion"], color="tab:blue")
        overall = (t["conversion"] * t["leads"]).sum() / t["leads"].sum()
        ax.axhline(overall, color="grey", linestyle=":")
        ax.set(title=name, ylabel="conversion")
        ax.tick_params(axis="x", rotation=60, labelsize=8)
    fig.tight_layout()
    plt.close(fig)  # shown once where returned (a notebook cell), not again by pyplot
    return fig


def plot_timelines(data: dataset.LeadData, n: int = 5, seed: int = 0):
    """Event timelines of a few converted and a few other leads (CRM data), or None."""
    import matplotlib.pyplot as plt

    if data.kind != "crm" or data.events is None or not len(data.events):
        return None
    rng = np.random.default_rng(seed)
    with_events = data.leads[data.leads["lead_id"].isin(data.events["lead_id"])]
    conv = with_events[with_events["converted"] == 1]
    other = with_events[with_events["converted"] != 1]
    pick = pd.concat(
        [
            conv.sample(min(n, len(conv)), random_state=rng.integers(1 << 31)),
            other.sample(min(n, len(other)), random_state=rng.integers(1 << 31)),
        ]
    )
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(pick) + 1.2))
    cmap = plt.get_cmap("tab20")
    colours = {t: cmap(i) for i, t in enumerate(contract.EVENT_TYPES)}
    for row, lead in enumerate(pick.itertuples()):
        ev = data.events[data.events["lead_id"] == lead.lead_id]
        for etype, part in ev.groupby("event_type", observed=True):
            ax.scatter(
                part["occurred_at"],
                [row] * len(part),
                s=14,
                color=colours[etype],
                label=etype if row == 0 or etype not in ax.get_legend_handles_labels()[1] else None,
            )
        ax.scatter([lead.created_at], [row], marker="|", s=200, color="black")
        if lead.converted == 1 and pd.notna(lead.converted_at):
            ax.scatter(
                [lead.converted_at], [row], marker="*", s=120, color="gold", edgecolor="black"
            )
    ax.set_yticks(
        range(len(pick)),
        [
            f"{i} ({'won' if c == 1 else 'open'})"
            for i, c in zip(pick["lead_id"], pick["converted"], strict=True)
        ],
    )
    ax.set(title="Events per lead: | created, * converted", xlabel="time")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    plt.close(fig)  # shown once where returned (a notebook cell), not again by pyplot
    return fig


def leaks(data: dataset.LeadData, config: TrainConfig) -> pd.DataFrame:
    """The leakage guard on all labelled rows: columns that alone predict the outcome."""
    lab = labels.label(data, config)
    spec = fit_spec(data, config)
    feats = build_features(lab.leads, lab.events, spec, as_of=lab.as_of)
    y = lab.y[lab.leads.index.get_indexer(feats.X.index)]
    found = evaluate.find_leaks(feats.X, y, spec.labels, config.leakage_auc)
    return pd.DataFrame(found, columns=["column", "auc_alone"])


def activity_counts(data: dataset.LeadData) -> pd.DataFrame:
    """How many events of each type the data holds (CRM), most frequent first."""
    if data.events is None:
        return pd.DataFrame(columns=["event_type", "events"])
    counts = data.events["event_type"].value_counts()
    return counts.rename_axis("event_type").rename("events").reset_index()


# ---- runs side by side ----------------------------------------------------------------------


def compare_runs(settings: Settings, runs: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Runs (name -> run id) side by side from the tracking store: test metrics, reliability
    and band backtest tables (as logged by training)."""
    from leadml import tracking

    metrics = pd.DataFrame(
        {name: tracking.run_metrics(settings, run_id) for name, run_id in runs.items()}
    )
    out = {"metrics": metrics}
    for table in ("reliability", "bands"):
        parts = [
            tracking.run_table(settings, run_id, f"{table}.csv").assign(run=name)
            for name, run_id in runs.items()
        ]
        out[table] = pd.concat(parts, ignore_index=True)
    return out


def plot_runs(compared: dict[str, pd.DataFrame]):
    """Reliability curves and band conversion of the compared runs, side by side."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, part in compared["reliability"].groupby("run"):
        left.plot(part["predicted"], part["observed"], marker="o", label=name)
    left.plot([0, 1], [0, 1], color="grey", linestyle=":")
    left.set(title="Reliability (test leads)", xlabel="predicted", ylabel="observed")
    left.legend()
    bands = compared["bands"].pivot(index="band", columns="run", values="observed")
    bands.reindex(["SQL", "MQL", "Unqualified"]).plot.bar(ax=right, rot=0)
    right.set(title="Observed conversion per band", ylabel="conversion")
    fig.tight_layout()
    plt.close(fig)  # shown once where returned (a notebook cell), not again by pyplot
    return fig
