"""From a booster's raw score (log-odds) to a calibrated probability.

`Calibrator` picks isotonic or sigmoid (Platt) calibration by cross-validated log loss on
the calibration slice; the main model and the grade sub-models use it alike.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

_EPS = 1e-6


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean log loss with probabilities clipped away from 0 and 1."""
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


class Calibrator:
    """Maps the booster's raw score (log-odds) to a calibrated probability.

    method "auto" compares isotonic and sigmoid (Platt) by 5-fold cross-validated log loss
    on the calibration slice and keeps the better one, so the choice is not made on the very
    rows each candidate was fitted to.
    """

    def __init__(self, method: str = "auto", seed: int = 0):
        self.method = method
        self.seed = seed

    @staticmethod
    def _fit_one(method: str, raw: np.ndarray, y: np.ndarray) -> dict:
        if method == "sigmoid":
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
            return {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
        iso = IsotonicRegression(out_of_bounds="clip", y_min=_EPS, y_max=1 - _EPS).fit(raw, y)
        return {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}

    @staticmethod
    def _apply(method: str, params: dict, raw: np.ndarray) -> np.ndarray:
        if method == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(params["a"] * raw + params["b"])))
        return np.interp(raw, params["x"], params["y"])

    def fit(self, raw: np.ndarray, y: np.ndarray) -> Calibrator:
        raw, y = np.asarray(raw, float), np.asarray(y, float)
        candidates = ["isotonic", "sigmoid"] if self.method == "auto" else [self.method]
        self.cv_log_loss_ = {}
        if len(candidates) > 1:
            folds = StratifiedKFold(5, shuffle=True, random_state=self.seed)
            for m in candidates:
                pred = np.empty_like(raw)
                for tr, te in folds.split(raw, y):
                    pred[te] = self._apply(m, self._fit_one(m, raw[tr], y[tr]), raw[te])
                self.cv_log_loss_[m] = log_loss(y, pred)
        scores = self.cv_log_loss_
        self.method_ = min(scores, key=lambda m: scores[m]) if scores else candidates[0]
        self.params_ = self._fit_one(self.method_, raw, y)
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return np.clip(
            self._apply(self.method_, self.params_, np.asarray(raw, float)), _EPS, 1 - _EPS
        )

    def to_dict(self) -> dict:
        return {"method": self.method_, "params": self.params_, "cv_log_loss": self.cv_log_loss_}

    @classmethod
    def from_dict(cls, d: dict) -> Calibrator:
        c = cls(d["method"])
        c.method_, c.params_, c.cv_log_loss_ = d["method"], d["params"], d.get("cv_log_loss", {})
        return c
