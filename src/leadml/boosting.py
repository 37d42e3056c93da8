"""Fitting the LightGBM booster (one pass, or cross-fitted for calibration) and the
logistic-regression baseline, with the same parameters for every engine.

What they produce is assembled into a `model.LeadScorer` by `train`.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from leadml.calibration import log_loss
from leadml.config import ModelConfig
from leadml.features import FeatureSpec


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
        loss = log_loss(y, 1.0 / (1.0 + np.exp(-raw)))
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
