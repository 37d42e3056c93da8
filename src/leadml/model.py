"""The conversion model as it is saved and served: `LeadScorer`.

`LeadScorer` is what gets saved, registered and served: the frozen feature spec, the
LightGBM booster, the calibrator, the band thresholds and the grades (fit x engagement grid,
temperature, stage, PQL; `grades`). It is stored as plain files
(booster text + JSON), not a pickle, so any leadml version that reads the format can load it,
and scoring a feature matrix is one `Booster.predict` plus a cheap interpolation. How the
booster and the logistic baseline are fitted is `boosting`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from leadml.bands import BandThresholds, to_band, to_score
from leadml.calibration import Calibrator
from leadml.errors import ModelError
from leadml.features import ColumnSpec, FeatureSpec, build_features
from leadml.grades import LABELS, Grades
from leadml.profile import Profile
from leadml.profile import load as load_profile
from leadml.reasons import reason_lists, split_points

FORMAT_VERSION = 1


def threads_for(rows: int) -> int:
    """OpenMP threads for a prediction: one for small batches. Waking a second thread costs
    more than it saves there, and on a busy machine a parallel region waits for a thread that
    is not scheduled (the service's p99 doubled with the default)."""
    return 1 if rows < 2000 else 0


@dataclass
class LeadScorer:
    """The deployable model: features spec, booster, calibrator, band thresholds, model card."""

    spec: FeatureSpec
    booster: lgb.Booster
    calibrator: Calibrator
    thresholds: BandThresholds
    card: dict = field(default_factory=dict)
    grades: Grades | None = None  # None: a model trained before grades existed
    profile: Profile | None = None  # the inputs at training time (None: trained before profiles)

    def raw_score(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        X = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        return np.asarray(self.booster.predict(X, raw_score=True, num_threads=threads_for(len(X))))

    def probability(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Calibrated conversion probability for a feature matrix."""
        return self.calibrator.transform(self.raw_score(X))

    def score_features(self, X: np.ndarray | pd.DataFrame) -> dict[str, np.ndarray]:
        """probability, score, band, and the grades (None where the model has none)."""
        X = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        p = self.probability(X)
        out = {"probability": p, "score": to_score(p), "band": to_band(p, self.thresholds)}
        if self.grades is None:
            return out | {k: np.full(len(X), None, object) for k in LABELS}
        return out | self.grades.label(X, threads_for(len(X)))

    def points(self, X: np.ndarray | pd.DataFrame) -> tuple[np.ndarray, float, list[str]]:
        """Each reason's contribution in score points, per lead: (n x reasons, base score, labels).

        A lead's points add up to its score before rounding (100 x probability) minus the base
        score, the score of the average lead. See `reasons.split_points` for how.
        """
        pts, base, labels, _ = self._points(X)
        return pts, base, labels

    def _points(
        self, X: np.ndarray | pd.DataFrame
    ) -> tuple[np.ndarray, float, list[str], np.ndarray]:
        """Points, base score, labels, and the probability the points add up to: LightGBM's
        SHAP values per reason group, split on the calibrated scale by `reasons.split_points`."""
        X = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        contrib = np.asarray(
            self.booster.predict(X, pred_contrib=True, num_threads=threads_for(len(X) * 20))
        )
        groups = self.spec.reason_groups()
        pts, base, p = split_points(contrib, list(groups.values()), self.calibrator.transform)
        return pts, base, list(groups), p

    def reasons(
        self, X: np.ndarray | pd.DataFrame, top: int = 3, probability: np.ndarray | None = None
    ) -> list[dict]:
        """Up to `top` positive and `top` negative reasons per lead, largest first, and the rest
        (`reasons.reason_lists`): base_score + positive + negative + other == total, exactly, the
        score before rounding to 1-99, 100 x `probability` as the caller rounds it (6 decimals;
        by default the probability the points were computed from).
        """
        X = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        pts, base, labels, p = self._points(X)
        p = p if probability is None else np.asarray(probability, np.float64)
        columns = list(self.spec.reason_groups().values())
        lists = reason_lists(pts, base, labels, columns, self.spec, X, p, top)
        return [why | {"adds_up_to": "score"} for why in lists]

    def grade_reasons(self, X: np.ndarray | pd.DataFrame, top: int = 3) -> dict[str, list]:
        """`fit_reasons` and `engagement_reasons` per lead (`Grades.reasons`: what made the fit
        a B), None where the model has no such sub-model."""
        X = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        if self.grades is None:
            return {"fit_reasons": [None] * len(X), "engagement_reasons": [None] * len(X)}
        return self.grades.reasons(X, self.spec, top, threads_for(len(X) * 20))

    def score_leads(
        self,
        leads: pd.DataFrame,
        events: pd.DataFrame | None = None,
        as_of=None,
        source: str = "leads",
    ):
        """Score raw leads (same shape as training) -> (DataFrame id/probability/score/band, features)."""
        feats = build_features(leads, events, self.spec, as_of=as_of, source=source)
        out = self.score_features(feats.X)
        frame = pd.DataFrame({self.spec.id_column: feats.ids, **out}, index=feats.X.index)
        return frame, feats

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path / "booster.txt"))
        spec = asdict(self.spec)
        meta = {
            "format_version": FORMAT_VERSION,
            "spec": spec,
            "calibrator": self.calibrator.to_dict(),
            "thresholds": self.thresholds.as_dict(),
            "card": self.card,
            "grades": None if self.grades is None else self.grades.save(path),
        }
        (path / "scorer.json").write_text(json.dumps(meta, indent=1, default=str))
        if self.profile is not None:
            self.profile.save(path)
        return path

    @classmethod
    def load(cls, path: Path | str) -> LeadScorer:
        path = Path(path)
        if not (path / "scorer.json").exists():
            raise ModelError(
                f"{path}: no leadml model here (scorer.json missing). Train one with `leadml train` or point --model at an export."
            )
        meta = json.loads((path / "scorer.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelError(
                f"{path}: model format {meta.get('format_version')} is not {FORMAT_VERSION}; retrain with this leadml version."
            )
        s = meta["spec"]
        s["columns"] = [ColumnSpec(**c) for c in s.get("columns", [])]
        spec = FeatureSpec(**s)
        booster = lgb.Booster(model_file=str(path / "booster.txt"))
        t = meta["thresholds"]
        grades = meta.get("grades")
        return cls(
            spec,
            booster,
            Calibrator.from_dict(meta["calibrator"]),
            BandThresholds(t["sql"], t["mql"], t["policy"]),
            meta.get("card", {}),
            None if grades is None else Grades.load(path, grades, spec.feature_names),
            load_profile(path),
        )
