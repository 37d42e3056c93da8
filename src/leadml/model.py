"""LightGBM conversion model, its calibration, and the logistic-regression baseline.

`LeadScorer` is what gets saved, registered and served: the frozen feature spec, the
LightGBM booster, the calibrator and the band thresholds. It is stored as plain files
(booster text + JSON), not a pickle, so any leadml version that reads the format can load it,
and scoring a feature matrix is one `Booster.predict` plus a cheap interpolation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from leadml.bands import BandThresholds, to_band, to_score
from leadml.config import ModelConfig
from leadml.errors import ModelError
from leadml.features import ColumnSpec, FeatureSpec, build_features

FORMAT_VERSION = 1
_EPS = 1e-6


def _threads(rows: int) -> int:
    """OpenMP threads for a prediction: one for small batches. Waking a second thread costs
    more than it saves there, and on a busy machine a parallel region waits for a thread that
    is not scheduled (the service's p99 doubled with the default)."""
    return 1 if rows < 2000 else 0


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
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
                self.cv_log_loss_[m] = _logloss(y, pred)
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


class _ProgressCallback:
    """tqdm bar over boosting rounds (LightGBM callback protocol)."""

    def __init__(self, bar):
        self.bar = bar
        self.order = 30

    def __call__(self, env) -> None:
        self.bar.update(1)


def booster_params(spec: FeatureSpec, cfg: ModelConfig, seed: int) -> dict[str, Any]:
    """LightGBM parameters from the model config, the same for every engine."""
    params = {
        "objective": "binary",
        "metric": "binary_logloss",
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_child_samples,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": 1,
        "lambda_l2": cfg.lambda_l2,
        "cat_smooth": cfg.cat_smooth,
        "min_data_per_group": cfg.min_data_per_group,
        "seed": seed,
        "verbosity": -1,
        "deterministic": True,
        "force_row_wise": True,
    }
    if cfg.monotone:
        params["monotone_constraints"] = spec.monotone_constraints()
        params["monotone_constraints_method"] = "advanced"
    return params


def lgb_names(spec: FeatureSpec) -> list[str]:
    """LightGBM-safe column names (f0, f1, ...); the business labels live in the spec."""
    return [f"f{i}" for i in range(len(spec.feature_names))]


def categorical_positions(spec: FeatureSpec) -> list[int]:
    return [spec.feature_names.index(c) for c in spec.categorical]


def best_rounds(booster: lgb.Booster, X: np.ndarray, y: np.ndarray) -> int:
    """How many of the booster's rounds give the lowest log loss on (X, y): early stopping
    after the fact, for boosters trained without it (LightGBM's Dask interface has none).

    The trees are scored a slice at a time and added up, so checking every round costs
    about one prediction of the whole model.
    """
    total = booster.current_iteration()
    step = max(1, total // 400)
    raw, best, best_loss = np.zeros(len(y)), total, np.inf
    for start in range(0, total, step):
        k = min(step, total - start)
        raw += np.asarray(
            booster.predict(X, raw_score=True, start_iteration=start, num_iteration=k)
        )
        loss = _logloss(y, 1.0 / (1.0 + np.exp(-raw)))
        if loss < best_loss:
            best, best_loss = start + k, loss
    return best


def fit_booster(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray | None,
    y_valid: np.ndarray | None,
    spec: FeatureSpec,
    cfg: ModelConfig,
    seed: int = 7,
    progress: bool = False,
) -> lgb.Booster:
    """LightGBM with early stopping on the validation slice (none: exactly max_rounds); native categories."""
    cat_idx = categorical_positions(spec)
    params = booster_params(spec, cfg, seed) | {"num_threads": cfg.threads}
    names = lgb_names(spec)
    dtrain = lgb.Dataset(
        X_train, y_train, feature_name=names, categorical_feature=cat_idx, free_raw_data=True
    )
    valid_sets: list[lgb.Dataset] = []
    callbacks: list[Any] = []
    if X_valid is not None:
        valid_sets = [lgb.Dataset(X_valid, y_valid, reference=dtrain)]
        callbacks.append(lgb.early_stopping(cfg.early_stopping_rounds, verbose=False))
    from leadml.progress import bar as progress_bar
    from leadml.progress import redraws

    bar = None
    if progress and redraws():  # in logs the step line "boosting" says enough
        bar = progress_bar(cfg.max_rounds, "boosting rounds", "round", progress)
        callbacks.append(_ProgressCallback(bar))
    try:
        booster = lgb.train(
            params, dtrain, cfg.max_rounds, valid_sets=valid_sets, callbacks=callbacks
        )
    finally:
        if bar is not None:
            bar.close()
    return booster


def fit_crossfit(
    X: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    cfg: ModelConfig,
    folds: int,
    seed: int = 7,
    progress: bool = False,
) -> tuple[lgb.Booster, np.ndarray]:
    """Cross-fitted LightGBM for data without a time order.

    Each of `folds` models is early-stopped on its own held-out fold, which gives an
    out-of-fold raw score for every row (for calibration and band thresholds). The final
    booster is refitted on all rows with the folds' mean best iteration, so it learns from every
    row and is still one booster to score with.
    """
    oof = np.empty(len(y))
    iters = []
    for tr, va in crossfit_folds(y, folds, seed):
        b = fit_booster(X[tr], y[tr], X[va], y[va], spec, cfg, seed, progress)
        oof[va] = b.predict(X[va], raw_score=True)
        iters.append(b.best_iteration or b.current_iteration())
    rounds = crossfit_rounds(iters)
    final = fit_booster(
        X, y, None, None, spec, cfg.model_copy(update={"max_rounds": rounds}), seed, progress
    )
    return final, oof


def crossfit_folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (fit, held-out) row positions of each fold of a cross-fit: stratified by `y`,
    shuffled, deterministic by `seed`, the same for every engine."""
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def crossfit_rounds(iters: list[int]) -> int:
    """The rounds of a cross-fit's final booster, from each fold's best iteration."""
    # same rounds as the folds' mean: scaling up for the extra data made the final model
    # sharper than the out-of-fold scores its calibrator was fitted on (ECE 0.021 vs 0.019
    # over ten X Education splits)
    return max(int(np.mean(iters)), 1)


def fit_baseline(X: pd.DataFrame, y: np.ndarray, spec: FeatureSpec, seed: int = 7) -> Pipeline:
    """Logistic regression on the same features: one-hot categories, log-scaled numbers."""
    cats = [c for c in spec.feature_names if c in spec.categorical]
    nums = [c for c in spec.feature_names if c not in spec.categorical]
    signed_log = FunctionTransformer(
        lambda a: np.sign(a) * np.log1p(np.abs(a)), feature_names_out="one-to-one"
    )
    pre = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True),
                    signed_log,
                    StandardScaler(),
                ),
                nums,
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1),
                    OneHotEncoder(handle_unknown="ignore", min_frequency=5),
                ),
                cats,
            ),
        ]
    )
    model = Pipeline([("pre", pre), ("lr", LogisticRegression(C=1.0, max_iter=2000))])
    return model.fit(X, y)


@dataclass
class LeadScorer:
    """The deployable model: features spec, booster, calibrator, band thresholds, model card."""

    spec: FeatureSpec
    booster: lgb.Booster
    calibrator: Calibrator
    thresholds: BandThresholds
    card: dict = field(default_factory=dict)

    def raw_score(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        X = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        return np.asarray(self.booster.predict(X, raw_score=True, num_threads=_threads(len(X))))

    def probability(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Calibrated conversion probability for a feature matrix."""
        return self.calibrator.transform(self.raw_score(X))

    def score_features(self, X: np.ndarray | pd.DataFrame) -> dict[str, np.ndarray]:
        p = self.probability(X)
        return {"probability": p, "score": to_score(p), "band": to_band(p, self.thresholds)}

    def points(self, X: np.ndarray | pd.DataFrame) -> tuple[np.ndarray, float, list[str]]:
        """Each reason's contribution in score points, per lead: (n x reasons, base score, labels).

        A lead's points add up to its score before rounding (100 x probability) minus the base
        score, the score of the average lead. See `_points` for how.
        """
        pts, base, labels, _ = self._points(X)
        return pts, base, labels

    def _points(
        self, X: np.ndarray | pd.DataFrame
    ) -> tuple[np.ndarray, float, list[str], np.ndarray]:
        """Points, base score, labels, and the probability the points add up to.

        LightGBM's SHAP values split a lead's log-odds into the average lead's (the bias b)
        plus one part per feature; the parts of one reason are added up. The calibration f
        (log-odds to score) is not a straight line, so the parts cannot just be scaled. The
        reasons that raise the lead's log-odds (together U) and those that lower it (together
        D) are two players of a Shapley game on f: the raising side gets the mean of
        f(b+U) - f(b) and f(b+U+D) - f(b+D), the lowering side the rest of f(b+U+D) - f(b),
        and each side is shared out in proportion to its parts.

        So the points add up exactly, a raising reason never costs points (f never falls), and
        no reason is worth more than 100 points, even for a lead next to the average (U + D
        near 0) or a calibration with steep steps, where one slope for all parts breaks down.
        """
        X = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        contrib = np.asarray(
            self.booster.predict(X, pred_contrib=True, num_threads=_threads(len(X) * 20))
        )
        groups = self.spec.reason_groups()
        phi = np.column_stack([contrib[:, cols].sum(axis=1) for cols in groups.values()])
        bias = contrib[:, -1]
        up = np.where(phi > 0, phi, 0.0).sum(axis=1)
        down = np.where(phi < 0, phi, 0.0).sum(axis=1)

        def f(z: np.ndarray) -> np.ndarray:
            return 100 * self.calibrator.transform(z)

        f0, f_up, f_down, f_all = f(bias), f(bias + up), f(bias + down), f(bias + up + down)
        gain_up = 0.5 * ((f_up - f0) + (f_all - f_down))
        gain_down = (f_all - f0) - gain_up
        share_up = gain_up / np.where(up > 0, up, 1.0)
        share_down = gain_down / np.where(down < 0, down, -1.0)
        pts = phi * np.where(phi > 0, share_up[:, None], np.where(phi < 0, share_down[:, None], 0))
        base = float(f0[0]) if len(f0) else float(f(np.zeros(1))[0])
        return pts, base, list(groups), f_all / 100

    def reasons(
        self, X: np.ndarray | pd.DataFrame, top: int = 3, probability: np.ndarray | None = None
    ) -> list[dict]:
        """Up to `top` positive and `top` negative reasons per lead, largest first, and the rest.

        Each reason: {"field": business name, "value": the lead's value, "points": contribution,
        rounded to 0.1}; contributions under 0.05 points are not reasons. `other` is everything
        not listed (the smaller reasons, and the rounding of the listed points and of the base
        score), so that base_score + positive + negative + other == total, exactly: the score
        before rounding to 1-99, 100 x `probability` as the caller rounds it (6 decimals;
        by default the probability the points were computed from).
        """
        X = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        pts, base, labels, p = self._points(X)
        p = p if probability is None else np.asarray(probability, np.float64)
        columns = list(self.spec.reason_groups().values())
        order = np.argsort(-pts, axis=1, kind="stable")
        base_shown = round(base, 1)
        out = []
        for i in range(len(X)):

            def reason(g: int, i: int = i) -> dict:
                return {
                    "field": labels[g],
                    "value": self.spec.describe(columns[g], X[i]),
                    "points": round(float(pts[i, g]), 1),
                }

            ranked = order[i]
            positive = [reason(g) for g in ranked[:top] if pts[i, g] >= 0.05]
            negative = [reason(g) for g in ranked[::-1][:top] if pts[i, g] <= -0.05]
            total = round(100 * round(float(p[i]), 6), 4)
            listed = base_shown + sum(r["points"] for r in positive + negative)
            out.append(
                {
                    "base_score": base_shown,
                    "positive": positive,
                    "negative": negative,
                    "other": round(total - listed, 4),
                    "total": total,
                    "adds_up_to": "score",
                }
            )
        return out

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
        }
        (path / "scorer.json").write_text(json.dumps(meta, indent=1, default=str))
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
        return cls(
            spec,
            booster,
            Calibrator.from_dict(meta["calibrator"]),
            BandThresholds(t["sql"], t["mql"], t["policy"]),
            meta.get("card", {}),
        )
