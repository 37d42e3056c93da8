"""How good the probabilities are: discrimination, calibration, lift, bands, and leaks.

Pure functions over (labels, probabilities); plots are written as PNG files for MLflow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)

from leadml.bands import BANDS

ECE_BINS = 10


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Share-weighted mean |observed - predicted| over equal-width probability bins."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = np.bincount(idx, minlength=bins)
    gap = np.abs(
        np.bincount(idx, weights=y, minlength=bins) - np.bincount(idx, weights=p, minlength=bins)
    )
    return float(gap.sum() / max(total.sum(), 1))


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y, p = np.asarray(y, float), np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "conversion_rate": float(y.mean()),
        "leads": int(len(y)),
    }


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    y, p = np.asarray(y, float), np.asarray(p, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": idx, "y": y, "p": p})
    out = (
        frame.groupby("bin")
        .agg(leads=("y", "size"), predicted=("p", "mean"), observed=("y", "mean"))
        .reset_index()
    )
    out["range"] = [f"{b / bins:.1f}-{(b + 1) / bins:.1f}" for b in out["bin"]]
    return out[["range", "leads", "predicted", "observed"]]


def lift_table(y: np.ndarray, p: np.ndarray, groups: int = 10) -> pd.DataFrame:
    """Deciles from the highest probability down: conversion, lift and cumulative gains."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    order = np.argsort(-p, kind="stable")
    decile = np.arange(len(p)) * groups // max(len(p), 1)
    frame = pd.DataFrame({"decile": decile + 1, "y": y[order], "p": p[order]})
    out = frame.groupby("decile").agg(
        leads=("y", "size"), predicted=("p", "mean"), observed=("y", "mean"), converted=("y", "sum")
    )
    base = y.mean() if y.size else 0.0
    out["lift"] = out["observed"] / base if base > 0 else np.nan
    out["gains"] = out["converted"].cumsum() / max(y.sum(), 1)
    return out.reset_index()


def band_backtest(y: np.ndarray, p: np.ndarray, band: np.ndarray) -> pd.DataFrame:
    """Per band: leads, share, predicted and observed conversion, lift over all leads."""
    y, p, band = np.asarray(y, float), np.asarray(p, float), np.asarray(band)
    base = y.mean() if y.size else 0.0
    rows = []
    for b in BANDS:
        m = band == b
        n = int(m.sum())
        rows.append(
            {
                "band": b,
                "leads": n,
                "share": n / max(len(y), 1),
                "predicted": float(p[m].mean()) if n else np.nan,
                "observed": float(y[m].mean()) if n else np.nan,
                "lift": float(y[m].mean() / base) if n and base > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows)


def probability_histogram(y: np.ndarray, p: np.ndarray, bins: int = 100) -> dict:
    """Test leads and conversions per probability bin (width 1 / bins): all the workspace's
    Bands page needs to recount any MQL / SQL lines, without a lead id (kept in the card)."""
    idx = np.clip((np.asarray(p, float) * bins).astype(int), 0, bins - 1)
    return {
        "bins": bins,
        "leads": np.bincount(idx, minlength=bins).astype(int).tolist(),
        "conversions": np.bincount(idx, weights=np.asarray(y, float), minlength=bins)
        .astype(int)
        .tolist(),
    }


def _single_column_auc(v: np.ndarray, y: np.ndarray, folds: int = 5) -> float:
    if len(np.unique(v)) < 2 or len(np.unique(y)) < 2:
        return 0.5
    if len(np.unique(v)) <= 300:  # categorical-like: rank values by their conversion rate
        v = _out_of_fold_rates(v, y, folds)
    auc = roc_auc_score(y, v)
    return max(auc, 1 - auc)


def _out_of_fold_rates(v: np.ndarray, y: np.ndarray, folds: int) -> np.ndarray:
    """Each row's value replaced by the conversion rate of that value on the other folds.

    Rates taken on the same rows would make any value seen once a perfect predictor (a
    number with a decimal on a few hundred leads looked like a leak with AUC 0.98, and a
    flagged model is never promoted)."""
    _, inv = np.unique(v, return_inverse=True)
    k = inv.max() + 1
    fold = np.random.default_rng(0).integers(0, folds, len(v))
    prior = y.mean()
    out = np.empty(len(v))
    for f in range(folds):
        rest, mine = fold != f, fold == f
        sums = np.bincount(inv[rest], weights=y[rest], minlength=k)
        counts = np.bincount(inv[rest], minlength=k)
        out[mine] = ((sums + prior) / (counts + 1))[inv[mine]]
    return out


def find_leaks(
    X: pd.DataFrame,
    y: np.ndarray,
    labels: dict[str, str],
    threshold: float,
    min_coverage: float = 0.1,
) -> list[tuple[str, float]]:
    """Columns that alone rank the outcome almost perfectly (AUC >= threshold).

    Such a column is usually filled in after the outcome is known (a sales note, a status),
    so a model would be useless on new leads. A sales-filled column is often blank for
    many leads, so the AUC is also taken over the rows where it is filled in (when at least
    `min_coverage` of rows are). Numbers rank as they are; categories by conversion rate.
    """
    y = np.asarray(y, float)
    found = []
    for col in X.columns:
        v = X[col].to_numpy(float)
        present = ~np.isnan(v)
        auc = _single_column_auc(np.where(present, v, -1e18), y)
        if min_coverage <= present.mean() < 1:
            auc = max(auc, _single_column_auc(v[present], y[present]))
        if auc >= threshold:
            found.append((labels.get(col, col), float(auc)))
    return sorted(found, key=lambda t: -t[1])


def plot_all(
    out_dir: Path,
    y: np.ndarray,
    p: np.ndarray,
    p_base: np.ndarray | None,
    importance: pd.DataFrame,
    reliability: pd.DataFrame,
    lift: pd.DataFrame,
) -> list[Path]:
    """ROC, reliability, lift and feature-importance PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, prob in (("LightGBM (calibrated)", p), ("logistic baseline", p_base)):
        if prob is not None:
            fpr, tpr, _ = roc_curve(y, prob)
            ax.plot(fpr, tpr, label=f"{name} AUC {roc_auc_score(y, prob):.3f}")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the test slice")
    ax.legend(loc="lower right")
    paths.append(out_dir / "roc.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
    ax.plot(reliability["predicted"], reliability["observed"], "o-", label="model")
    ax.set(
        xlabel="predicted conversion",
        ylabel="observed conversion",
        title="Reliability (test slice)",
    )
    ax.legend(loc="upper left")
    paths.append(out_dir / "reliability.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(lift["decile"], lift["lift"])
    ax.axhline(1, color="k", ls=":", lw=1)
    ax.set(
        xlabel="decile (1 = highest scores)",
        ylabel="lift over average",
        title="Lift by decile (test slice)",
    )
    paths.append(out_dir / "lift.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)

    top = importance.head(20).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh(top["feature"], top["gain_share"])
    ax.set(xlabel="share of total gain", title="Feature importance (LightGBM gain)")
    paths.append(out_dir / "feature_importance.png")
    fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return paths


class LeakFinding(str):
    """A leakage-guard warning that also keeps what it found: the column and its AUC.

    A str, so it travels with the other warnings (printed, logged, in the card) unchanged,
    and promotion can still find it without parsing text (see `leaks`)."""

    column: str
    auc: float

    def __new__(cls, column: str, auc: float) -> LeakFinding:
        text = f"leakage guard: column {column!r} alone predicts the outcome with AUC {auc:.3f}; it is probably filled in after the outcome is known. Drop it (--drop) unless it is known when a lead is scored."
        self = super().__new__(cls, text)
        self.column, self.auc = column, auc
        return self


def leak_warnings(
    X: pd.DataFrame, y: np.ndarray, labels: dict[str, str], threshold: float
) -> list[str]:
    """The leakage guard on training features: one `LeakFinding` per suspicious column."""
    return [LeakFinding(col, auc) for col, auc in find_leaks(X, y, labels, threshold)]


def plot_grades(out_dir: Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """The fit x engagement heatmap (conversion, leads per cell) and conversion per
    temperature, stage and PQL group, as PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    if "grid" in tables:
        g = tables["grid"]
        fits, engs = list(dict.fromkeys(g["fit"])), list(dict.fromkeys(g["engagement"]))
        conv = g.pivot(index="fit", columns="engagement", values="conversion").loc[fits, engs]
        leads = g.pivot(index="fit", columns="engagement", values="leads").loc[fits, engs]
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        im = ax.imshow(conv.to_numpy(float), cmap="YlGn", vmin=0)
        for i in range(len(fits)):
            for j in range(len(engs)):
                c, n = conv.iat[i, j], int(leads.iat[i, j])
                text = "-" if np.isnan(c) else f"{c:.0%}"
                ax.text(j, i, f"{text}\n{n} leads", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(engs)), [f"engagement {e}" for e in engs], fontsize=8)
        ax.set_yticks(range(len(fits)), [f"fit {f}" for f in fits])
        ax.set_title("Conversion per grid cell (test leads)")
        fig.colorbar(im, ax=ax, label="conversion")
        paths.append(out_dir / "grid.png")
        fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
    groups = [k for k in ("temperature", "stage", "pql") if k in tables]
    if groups:
        fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.5), squeeze=False)
        for ax, name in zip(axes[0], groups, strict=True):
            t = tables[name]
            ax.bar(t["group"].astype(str), t["conversion"], color="tab:green")
            for x, (c, n) in enumerate(zip(t["conversion"], t["leads"], strict=True)):
                ax.text(
                    x,
                    0 if np.isnan(c) else c,
                    f"{int(n)} leads",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
            ax.set(title=f"Conversion by {name}", ylabel="conversion")
        paths.append(out_dir / "grades.png")
        fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
    return paths
