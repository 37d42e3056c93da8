"""Grades: the words a marketer reads next to the score, learned like the score itself.

* **fit** A-D (who the lead is) and **engagement** 1-4 (what the lead did) are the quartiles
  of two calibrated sub-models on the calibration slice, each boosted on one half of the
  features: the profile (title, company, industry, region, source) and the behaviour
  (activity counts, recency, decay). The **grid** cell is the pair, A1 (ideal fit, highly
  engaged) to D4.
* **temperature** hot / warm / cold: recent activity (each action in the last 7 days counts
  twice, in the last 30 days once), cut where the calibration slice's busiest quarter and
  the next quarter begin.
* **stage** ToFu / MoFu / BoFu: the strongest kind of action in the last `stage_days`, by the
  mapping in the config (`grades.stages`), or of its latest actions when there were none
  then. Flat exports read it from a column (`grades.stage_column`).
* **pql**: a product-usage sub-model (trial, activation, key feature use, seats invited) whose
  score passes the threshold at which, on the calibration slice, usage alone converts at the
  SQL line's rate.

The cut points and the sub-models are saved with the model, so a lead's grades only change
when its data does. A label the data cannot give (no dates in a flat export, no usage
columns) is missing (`None`), and the model card says why in `notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from leadml.calibration import Calibrator
from leadml.config import STAGE_NAMES, GradeConfig
from leadml.engagement import KINDS, USAGE_KINDS
from leadml.features import FeatureSpec
from leadml.reasons import reason_lists, split_points

FIT_LETTERS = ("A", "B", "C", "D")
ENGAGEMENT_NUMBERS = ("1", "2", "3", "4")
TEMPERATURES = ("hot", "warm", "cold")
MIN_GROUP = 30  # leads a learned threshold must rest on
FLAT_ENGAGEMENT = r"visit|view|time spent|minutes|seconds|duration|activity|click|open|download|webinar|session|page"
LABELS = ("fit", "engagement", "grid", "temperature", "stage", "pql")
# one sentence per label for the model card and /docs: what a marketer reads in it
MEANING = {
    "fit": "Who the lead is: A (best quarter of leads by profile: title, company, industry, "
    "region, source) to D (weakest quarter).",
    "engagement": "What the lead did: 1 (most engaged quarter of leads, recent activity "
    "weighing more) to 4 (least engaged quarter).",
    "grid": "Fit letter and engagement number together: A1 is an ideal, highly engaged lead, "
    "D4 a poor fit that barely engaged.",
    "temperature": "How urgently to act: hot (among the busiest quarter of leads over the last "
    "7 and 30 days), warm (the next quarter), cold (quiet lately).",
    "stage": "Where the lead is in the funnel, from its strongest recent action: ToFu (reading, "
    "browsing), MoFu (pricing, webinars, downloads, email clicks), BoFu (demo, trial, cart).",
    "pql": "Product-qualified lead: its product usage (trial, activation, key features, seats "
    "invited) alone says it converts at least as often as an SQL.",
}


VALUES = {
    "fit": "A, B, C, D",
    "engagement": "1, 2, 3, 4",
    "grid": "A1 .. D4",
    "temperature": "hot, warm, cold",
    "stage": "ToFu, MoFu, BoFu",
    "pql": "true, false",
}


def markdown() -> str:
    """The labels as the README's table (a test keeps the two equal)."""
    rows = ["| label | values | what it tells you |", "| --- | --- | --- |"]
    rows += [f"| `{k}` | {VALUES[k]} | {MEANING[k]} |" for k in LABELS]
    return "\n".join(rows) + "\n"


@dataclass
class SubModel:
    """A calibrated booster on some of the features, with cut points on its raw score."""

    columns: list[str]
    booster: lgb.Booster
    calibrator: Calibrator
    cuts: list[float]  # ascending raw-score cut points

    def raw(self, X: np.ndarray, positions: list[int], threads: int = 0) -> np.ndarray:
        part = np.ascontiguousarray(X[:, positions])
        return np.asarray(self.booster.predict(part, raw_score=True, num_threads=threads))

    def to_dict(self) -> dict:
        return {"columns": self.columns, "calibrator": self.calibrator.to_dict(), "cuts": self.cuts}


@dataclass
class Grades:
    """What turns a feature matrix into the grade labels (see the module docstring)."""

    feature_names: list[str]
    fit: SubModel | None = None
    engagement: SubModel | None = None
    usage: SubModel | None = None
    temperature: dict | None = None  # {"recent": [cols], "month": [cols], "cuts": [warm, hot]}
    stage: dict | None = None  # crm: {"recent": {stage: [cols]}, "ever": {...}}; flat: codes
    notes: dict[str, str] = field(default_factory=dict)

    @cached_property
    def _index(self) -> dict[str, int]:  # looked up per request: a list's index() was a third
        return {name: j for j, name in enumerate(self.feature_names)}  # of a lead's labelling

    def _positions(self, sub: SubModel) -> list[int]:
        return [self._index[c] for c in sub.columns]

    @cached_property
    def _sum_plan(self) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """What the rule labels add up (temperature's recent activity, each stage's actions per
        window, product usage), read as one matrix product: the columns, a 0/1 matrix, and
        each sum's place in the product. One product per call instead of nine sums."""
        wanted: dict[str, list[str]] = {}
        if self.temperature is not None:
            wanted["heat"] = self.temperature["recent"] + self.temperature["month"]
        if self.stage is not None and "column" not in self.stage:
            for window in ("recent", "ever"):
                for stage, names in self.stage[window].items():
                    wanted[f"{window} {stage}"] = names
        if self.usage is not None:
            wanted["usage"] = self.usage.columns
        cols = sorted({self._index[c] for names in wanted.values() for c in names})
        row = {j: k for k, j in enumerate(cols)}
        M = np.zeros((len(cols), len(wanted)))
        for g, names in enumerate(wanted.values()):
            for c in names:
                M[row[self._index[c]], g] += 1
        return np.asarray(cols, np.intp), M, {name: g for g, name in enumerate(wanted)}

    def _sums(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """The sums of `_sum_plan` per row, a missing count counting 0."""
        cols, M, at = self._sum_plan
        part = X[:, cols]
        totals = np.where(np.isnan(part), 0.0, part) @ M
        return {name: totals[:, g] for name, g in at.items()}

    def label(self, X: np.ndarray | pd.DataFrame, threads: int = 0) -> dict[str, np.ndarray]:
        """fit, engagement, grid, temperature, stage, pql per row (None where not known);
        `threads`: LightGBM's for the sub-models (0: all cores)."""
        X = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else np.asarray(X, np.float64)
        n = len(X)
        out: dict[str, np.ndarray] = {}
        for name, symbols in (("fit", FIT_LETTERS), ("engagement", ENGAGEMENT_NUMBERS)):
            sub = getattr(self, name)
            if sub is None:
                out[name] = np.full(n, None, object)
                continue
            raw = sub.raw(X, self._positions(sub), threads)
            count = np.searchsorted(sub.cuts, raw, side="right")
            out[name] = np.asarray(symbols, object)[3 - count]
        known = (out["fit"] != None) & (out["engagement"] != None)  # noqa: E711
        grid = np.full(n, None, object)
        grid[known] = out["fit"][known] + out["engagement"][known]
        out["grid"] = grid
        sums = self._sums(X)
        out["temperature"] = self._temperature(sums, n)
        out["stage"] = self._stage(X, sums)
        out["pql"] = self._pql(X, sums, threads)
        return out

    def _temperature(self, sums: dict[str, np.ndarray], n: int) -> np.ndarray:
        if self.temperature is None:
            return np.full(n, None, object)
        heat = sums["heat"]  # recent_activity's sum
        warm, hot = self.temperature["cuts"]
        return np.where(heat >= hot, "hot", np.where(heat >= warm, "warm", "cold")).astype(object)

    def _stage(self, X: np.ndarray, sums: dict[str, np.ndarray]) -> np.ndarray:
        s = self.stage
        if s is None:
            return np.full(len(X), None, object)
        if "column" in s:  # a flat export's column: its category codes mapped to stages
            code = X[:, self._index[s["column"]]]
            out = np.full(len(X), None, object)
            for c, stage in s["codes"].items():
                out[code == int(c)] = stage
            return out
        out = np.full(len(X), "ToFu", object)
        decided = np.zeros(len(X), bool)
        for window in ("recent", "ever"):
            for stage in reversed(STAGE_NAMES):  # strongest first
                if f"{window} {stage}" not in sums:
                    continue
                hit = ~decided & (sums[f"{window} {stage}"] > 0)
                out[hit] = stage
                decided |= hit
        return out

    def _pql(self, X: np.ndarray, sums: dict[str, np.ndarray], threads: int) -> np.ndarray:
        if self.usage is None or not self.usage.cuts:
            return np.zeros(len(X), bool)
        used = sums["usage"] > 0
        out = np.zeros(len(X), bool)
        if used.any():  # most leads never used the product: no booster call for them
            raw = self.usage.raw(X[used], self._positions(self.usage), threads)
            out[used] = raw >= self.usage.cuts[0]
        return out

    def reasons(
        self, X: np.ndarray, spec: FeatureSpec, top: int = 3, threads: int = 0
    ) -> dict[str, list[dict | None]]:
        """What made each lead's fit and engagement: `fit_reasons` and `engagement_reasons`,
        one per row (None without that sub-model). As the score's reasons, on the sub-model's
        scale: base_score + positive + negative + other == total, 100 x the sub-model's
        calibrated probability; each reason is one of the spec's reason groups (its part in
        the sub-model's columns)."""
        out: dict[str, list[dict | None]] = {}
        for name in ("fit", "engagement"):
            sub = getattr(self, name)
            if sub is None:
                out[f"{name}_reasons"] = [None] * len(X)
                continue
            positions = self._positions(sub)
            local = {j: k for k, j in enumerate(positions)}
            groups = {
                label: [j for j in cols if j in local]
                for label, cols in spec.reason_groups().items()
            }
            groups = {label: cols for label, cols in groups.items() if cols}
            contrib = np.asarray(
                sub.booster.predict(
                    np.ascontiguousarray(X[:, positions]), pred_contrib=True, num_threads=threads
                )
            )
            pts, base, p = split_points(
                contrib, [[local[j] for j in c] for c in groups.values()], sub.calibrator.transform
            )
            lists = reason_lists(pts, base, list(groups), list(groups.values()), spec, X, p, top)
            out[f"{name}_reasons"] = [why | {"adds_up_to": name} for why in lists]
        return out

    def card(self) -> dict:
        """The model card's part: each label's meaning, its cut points, and what is missing."""
        subs = {
            name: {"features": len(sub.columns), "cuts_raw": sub.cuts}
            for name in ("fit", "engagement", "usage")
            if (sub := getattr(self, name)) is not None
        }
        t, s = self.temperature, self.stage
        return {
            "meaning": MEANING,
            "sub_models": subs,
            "temperature": None if t is None else {"cuts": t["cuts"], "rule": t.get("rule", "")},
            "stage": None if s is None else {"rule": s.get("rule", "")},
            "notes": self.notes,
        }

    def save(self, path: Path) -> dict:
        """Boosters beside the model's (`grade_<name>.txt`); returns the JSON part."""
        meta: dict = {
            "temperature": self.temperature,
            "stage": self.stage,
            "notes": self.notes,
        }
        for name in ("fit", "engagement", "usage"):
            sub = getattr(self, name)
            if sub is not None:
                sub.booster.save_model(str(path / f"grade_{name}.txt"))
                meta[name] = sub.to_dict()
        return meta

    @classmethod
    def load(cls, path: Path, meta: dict, feature_names: list[str]) -> Grades:
        subs = {}
        for name in ("fit", "engagement", "usage"):
            if meta.get(name):
                m = meta[name]
                subs[name] = SubModel(
                    m["columns"],
                    lgb.Booster(model_file=str(path / f"grade_{name}.txt")),
                    Calibrator.from_dict(m["calibrator"]),
                    [float(c) for c in m["cuts"]],
                )
        return cls(
            feature_names,
            temperature=meta.get("temperature"),
            stage=meta.get("stage"),
            notes=meta.get("notes", {}),
            **subs,
        )


def recent_activity(
    X: np.ndarray, names: list[str], recent: list[str], month: list[str]
) -> np.ndarray:
    """Each positive action in the short window counts twice, in the month window once."""

    index = {name: j for j, name in enumerate(names)}
    return _total(X, [index[c] for c in recent]) + _total(X, [index[c] for c in month])


def _total(X: np.ndarray, idx: list[int]) -> np.ndarray:
    """Row sums of some columns, a missing count counting 0."""
    if not idx:
        return np.zeros(len(X))
    part = X[:, idx]
    return np.where(np.isnan(part), 0.0, part).sum(axis=1)


# ---- which features each part reads ---------------------------------------------------------


def parts(spec: FeatureSpec, config: GradeConfig) -> dict[str, list[str]]:
    """Feature names of the fit, engagement and usage sub-models (an empty list: none)."""
    import re

    names = spec.feature_names
    if spec.kind == "crm":

        def kind_of(name: str) -> str | None:
            return next((k for k in KINDS if name.startswith(k + "_")), None)

        usage = [n for n in names if kind_of(n) in USAGE_KINDS]
        fit = [n for n in names if n in spec.categorical]
        engagement = [n for n in names if n not in fit and n not in usage]
        return {"fit": fit, "engagement": engagement, "usage": usage}

    def source(name: str) -> str:  # a title column gives "<col> (seniority)" features
        return next(
            (c.name for c in spec.columns if name == c.name or name.startswith(c.name + " (")),
            name,
        )

    usage = [n for n in names if source(n) in config.usage_columns]
    if config.engagement_columns is not None:
        engagement = [n for n in names if source(n) in config.engagement_columns]
    else:
        engagement = [
            n for n in names if re.search(FLAT_ENGAGEMENT, source(n), re.I) and n not in usage
        ]
    fit = [n for n in names if n not in engagement and n not in usage]
    return {"fit": fit, "engagement": engagement, "usage": usage}


def window_of(spec: FeatureSpec, days: int) -> int:
    """The smallest feature window of at least `days` days (else the longest)."""
    longer = [w for w in sorted(spec.windows_days) if w >= days]
    return longer[0] if longer else max(spec.windows_days)
