"""How the grades did on the test leads: conversion per grid cell, temperature, stage and PQL
(with the MQL and SQL bands beside PQL), the grid for the terminal, and whether the grades
order conversion as they should (`ordering_checks`: the test suite and the benchmark read it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadml.config import STAGE_NAMES
from leadml.grades import (
    ENGAGEMENT_NUMBERS,
    FIT_LETTERS,
    MIN_GROUP,
    TEMPERATURES,
    Grades,
)

if TYPE_CHECKING:
    from leadml.engine import TestLeads


SYMBOLS = {
    "fit": FIT_LETTERS,
    "engagement": ENGAGEMENT_NUMBERS,
    "temperature": TEMPERATURES,
    "stage": STAGE_NAMES,
    "pql": (False, True),
}


def code(labels: dict[str, np.ndarray], name: str) -> np.ndarray:
    """One label as float codes (its position in SYMBOLS, NaN when missing), for engines
    that hand back numbers only."""
    lookup = {s: float(i) for i, s in enumerate(SYMBOLS[name])}
    return np.array([lookup.get(v, np.nan) for v in labels[name]], np.float64)


def decode(codes: np.ndarray, name: str) -> np.ndarray:
    symbols = np.asarray(SYMBOLS[name], object)
    out = np.full(len(codes), None, object)
    known = ~np.isnan(codes)
    out[known] = symbols[codes[known].astype(int)]
    return out


def test_labels(grades: Grades, test: TestLeads) -> dict[str, np.ndarray]:
    """The grades of the test leads, wherever they live (one pass per label)."""

    def one(name: str) -> np.ndarray:
        def fn(X: pd.DataFrame) -> np.ndarray:
            return code(grades.label(X), name)

        return decode(test.predict_test(fn), name)

    out = {name: one(name) for name in SYMBOLS}
    known = (out["fit"] != None) & (out["engagement"] != None)  # noqa: E711
    out["grid"] = np.full(len(out["fit"]), None, object)
    out["grid"][known] = out["fit"][known] + out["engagement"][known]
    return out


def sub_model_metrics(grades: Grades, test: TestLeads, y: np.ndarray) -> dict[str, float]:
    """ROC AUC of the fit, engagement and usage sub-models alone on the test leads
    (`fit_roc_auc`, ...: logged to MLflow with the main model's)."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for name in ("fit", "engagement", "usage"):
        sub = getattr(grades, name)
        if sub is None or len(np.unique(y)) < 2:
            continue
        positions = [grades.feature_names.index(c) for c in sub.columns]

        def raw(X: pd.DataFrame, sub=sub, positions=positions) -> np.ndarray:
            return sub.raw(X.to_numpy(np.float64), positions)

        out[f"{name}_roc_auc"] = float(roc_auc_score(y, test.predict_test(raw)))
    return out


def backtest(
    y: np.ndarray, labels: dict[str, np.ndarray], band: np.ndarray
) -> dict[str, pd.DataFrame]:
    """Leads and conversion per grid cell, temperature, stage and PQL on the test leads; the
    MQL and SQL bands beside PQL, as the issue's comparison asks."""
    y = np.asarray(y, np.float64)
    out: dict[str, pd.DataFrame] = {}
    if any(v is not None for v in labels["grid"]):
        frame = pd.DataFrame({"fit": labels["fit"], "engagement": labels["engagement"], "y": y})
        frame = frame.dropna()
        g = frame.groupby(["fit", "engagement"])["y"].agg(leads="size", conversion="mean")
        full = pd.MultiIndex.from_product([FIT_LETTERS, ENGAGEMENT_NUMBERS], names=g.index.names)
        out["grid"] = g.reindex(full).fillna({"leads": 0}).reset_index()
    for name in ("temperature", "stage", "pql"):
        values = labels[name]
        known = np.array([v is not None for v in values], bool)
        if not known.any():
            continue
        frame = pd.DataFrame({name: values[known].astype(str), "y": y[known]})
        g = frame.groupby(name)["y"].agg(leads="size", conversion="mean")
        order = [str(s) for s in SYMBOLS[name] if str(s) in g.index]
        table = g.reindex(order).reset_index().rename(columns={name: "group"})
        if name == "pql":
            table["group"] = table["group"].map({"True": "PQL", "False": "not PQL"})
            for b in ("SQL", "MQL"):
                hit = band == b
                row = {
                    "group": f"{b} band",
                    "leads": int(hit.sum()),
                    "conversion": y[hit].mean() if hit.any() else np.nan,
                }
                table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
        out[name] = table
    return out


def grid_text(grid: pd.DataFrame) -> str:
    """The grid as rows A-D and columns 1-4: conversion % (leads), for the terminal."""
    lines = ["fit \\ engagement" + "".join(f"{n:>16}" for n in ENGAGEMENT_NUMBERS)]
    for letter in FIT_LETTERS:
        cells = []
        for n in ENGAGEMENT_NUMBERS:
            row = grid[(grid["fit"] == letter) & (grid["engagement"] == n)]
            leads = int(row["leads"].iloc[0]) if len(row) else 0
            conv = row["conversion"].iloc[0] if len(row) and leads else np.nan
            cells.append(f"{'-' if np.isnan(conv) else f'{conv:.0%}':>8} ({leads:>5})")
        lines.append(f"{letter:<16}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def ordering_checks(tables: dict[str, pd.DataFrame], min_leads: int = MIN_GROUP) -> list[dict]:
    """Whether the grades order conversion as they should, on backtest tables (groups of at
    least `min_leads`): A > B > C > D pooled over engagement, 1 > 2 > 3 > 4 pooled over fit,
    A1 at least 3x D4, hot > warm > cold, BoFu > MoFu > ToFu, PQL above the MQL band. Each
    check: {"check", "observed", "ok"}; a check the tables cannot make is left out."""
    out: list[dict] = []

    def strictly_falling(name: str, rates: pd.Series) -> None:
        shown = " > ".join(f"{k} {v:.1%}" for k, v in rates.items())
        ok = len(rates) >= 2 and bool((np.diff(rates.to_numpy()) < 0).all())
        out.append({"check": name, "observed": shown, "ok": ok})

    if "grid" in tables:
        g = tables["grid"]
        g = g[g["leads"] >= min_leads].assign(hits=lambda t: t["leads"] * t["conversion"])
        halves: tuple[tuple[str, tuple[str, ...]], ...] = (
            ("fit", FIT_LETTERS),
            ("engagement", ENGAGEMENT_NUMBERS),
        )
        for half, order in halves:
            pooled = g.groupby(half)[["hits", "leads"]].sum()
            rates = (pooled["hits"] / pooled["leads"]).reindex(list(order)).dropna()
            strictly_falling(f"{half} pooled: " + " > ".join(order), rates)
        cell = g.set_index(["fit", "engagement"])["conversion"]
        if ("A", "1") in cell.index and ("D", "4") in cell.index:
            a1, d4 = cell[("A", "1")], cell[("D", "4")]
            ratio = a1 / d4 if d4 > 0 else np.inf
            out.append(
                {
                    "check": "A1 >= 3 x D4",
                    "observed": f"A1 {a1:.1%}, D4 {d4:.1%} ({ratio:.1f}x)",
                    "ok": bool(ratio >= 3),
                }
            )
    falling: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("temperature", ("hot", "warm", "cold")),
        ("stage", ("BoFu", "MoFu", "ToFu")),
    )
    for name, order in falling:
        if name in tables:
            t = tables[name].set_index("group")
            t = t[t["leads"] >= min_leads]
            strictly_falling(
                f"{name}: " + " > ".join(order), t["conversion"].reindex(list(order)).dropna()
            )
    if "pql" in tables:
        t = tables["pql"].set_index("group")
        if "PQL" in t.index and t.loc["PQL", "leads"] >= min_leads and "MQL band" in t.index:
            pql, mql = t.loc["PQL", "conversion"], t.loc["MQL band", "conversion"]
            out.append(
                {
                    "check": "PQL > MQL band",
                    "observed": f"PQL {pql:.1%} ({int(t.loc['PQL', 'leads'])} leads), MQL band {mql:.1%}",
                    "ok": bool(pql > mql),
                }
            )
    return out
