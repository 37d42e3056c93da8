"""The reference profile: what the model's inputs looked like when it was trained.

`leadml monitor` asks "do today's leads look like the ones the model learned from?" by
comparing the derived features of the kept scores with this profile (`drift.compare`). It is
built from the test slice's features (the latest matured cut-off: the population the model is
served on), saved as `profile.json` beside the booster in the model folder, so it is
registered, exported, promoted and rolled back with the model it describes. Small on purpose:
per feature, the bin edges (numbers) or the vocabulary (categories), the share of leads per bin
and the missing rate, a few KB for 85 features.

Values are binned the way the score store keeps them (`store.fingerprint`: 3 significant
digits), so a value and its rounded copy fall into the same bin.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from leadml import files
from leadml.features import FeatureSpec

FILE = "profile.json"
BINS = 10  # quantile bins per numeric feature (fewer when values repeat: counts of 0)
DIGITS = 3  # as store.fingerprint rounds


@dataclass(frozen=True)
class FeatureProfile:
    """One feature at training time. Numbers: `edges` split them into len(edges) + 1 bins.
    Categories: one bin per vocabulary code, then one for values unseen in training.
    `shares`: the share of non-missing leads per bin; `missing`: the share of missing values."""

    name: str
    kind: str  # "numeric" or "category"
    edges: list[float]
    shares: list[float]
    missing: float
    labels: list[str]  # categories: the vocabulary, in code order

    def bins(self) -> int:
        return len(self.shares)

    def counts(self, values: np.ndarray) -> tuple[np.ndarray, int]:
        """Leads per bin and the number missing, for `values` of this feature."""
        values = np.asarray(values, np.float64)
        present = values[~np.isnan(values)]
        if self.kind == "category":
            codes = np.clip(present, 0, len(self.labels)).astype(np.int64)  # beyond: unseen
        else:
            codes = np.searchsorted(np.asarray(self.edges), round_like_store(present), "right")
        return np.bincount(codes, minlength=self.bins()), int(len(values) - len(present))


@dataclass(frozen=True)
class Profile:
    """The reference profile of one model: per feature, as `FeatureProfile`."""

    rows: int
    features: dict[str, FeatureProfile]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "features": [asdict(f) for f in self.features.values()]}

    @classmethod
    def from_dict(cls, d: dict) -> Profile:
        feats = [FeatureProfile(**f) for f in d["features"]]
        return cls(int(d["rows"]), {f.name: f for f in feats})

    def save(self, folder: Path | str) -> Path:
        return files.write_text(Path(folder) / FILE, json.dumps(self.to_dict(), indent=0))


def round_like_store(values: np.ndarray, digits: int = DIGITS) -> np.ndarray:
    """`values` rounded to `digits` significant digits, as the score store keeps features."""
    values = np.asarray(values, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.floor(np.log10(np.abs(values)))
    scale = np.where(np.isfinite(magnitude), 10.0 ** (digits - 1 - magnitude), 1.0)
    return np.round(values * scale) / scale


def _edges(values: np.ndarray) -> list[float]:
    """Inner bin edges at the deciles of the present values, each once (a count that is 0
    for most leads gets one bin for 0, not five). Values equal to an edge fall above it, so
    an edge at the minimum would only make an empty bin: left out. A constant feature gets
    three bins (below, at, above its value), so a change from that value still shows."""
    if len(values) == 0:
        return []
    low = float(values.min())
    qs = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1], method="lower"))
    edges = [float(e) for e in qs if e > low]
    return edges or [low, float(np.nextafter(low, np.inf))]


def build(X: pd.DataFrame, spec: FeatureSpec) -> Profile:
    """The profile of the derived features `X` (columns `spec.feature_names`)."""
    feats = {}
    for name in spec.feature_names:
        values = X[name].to_numpy(np.float64)
        if name in spec.categorical:
            labels = list(spec.categories.get(name, []))
            shape = FeatureProfile(name, "category", [], [0.0] * (len(labels) + 1), 0.0, labels)
        else:
            edges = _edges(round_like_store(values[~np.isnan(values)]))
            shape = FeatureProfile(name, "numeric", edges, [0.0] * (len(edges) + 1), 0.0, [])
        counts, missing = shape.counts(values)
        present = max(int(counts.sum()), 1)
        feats[name] = replace(
            shape,
            shares=[round(float(c) / present, 6) for c in counts],
            missing=round(missing / max(len(values), 1), 6),
        )
    return Profile(len(X), feats)


def load(folder: Path | str) -> Profile | None:
    """The profile saved with a model, or None for a model trained before profiles existed."""
    path = Path(folder) / FILE
    if not path.exists():
        return None
    return Profile.from_dict(json.loads(path.read_text()))
