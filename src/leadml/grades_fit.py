"""How the grades are learned: the sub-models (fit, engagement, product usage) boosted on
their half of the features and calibrated, their quartile cuts and the PQL threshold on the
calibration slice, the temperature cuts, and the stage rule from the config.

`fit_grades` is called once per training by `train.finish`, for either engine; what it
returns (`grades.Grades`) is saved with the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from leadml.calibration import Calibrator
from leadml.config import GradeConfig, TrainConfig
from leadml.engagement import KINDS, NEGATIVE_KINDS
from leadml.errors import ConfigError
from leadml.features import FeatureSpec
from leadml.grades import MIN_GROUP, Grades, SubModel, parts, recent_activity, window_of


@dataclass(frozen=True)
class GradeRows:
    """The rows grades learn from: sub-models boost on train (early-stopped on valid) and are
    calibrated and cut on the calibration rows. `crossfit`: no time order, so the sub-models
    are cross-fitted on `train` and `calibration` holds the same rows (out-of-fold scores)."""

    train: tuple[pd.DataFrame, np.ndarray]
    valid: tuple[pd.DataFrame, np.ndarray] | None
    calibration: tuple[pd.DataFrame, np.ndarray]
    crossfit: bool = False


def fit_sub(
    columns: list[str], rows: GradeRows, spec: FeatureSpec, config: TrainConfig, folds: int
) -> tuple[SubModel, np.ndarray, np.ndarray]:
    """A sub-model on `columns` and its raw scores and outcomes on the calibration rows."""
    from leadml.boosting import fit_booster, fit_crossfit

    sub_spec = replace(
        spec,
        feature_names=list(columns),
        categorical=[c for c in spec.categorical if c in columns],
    )
    seed = config.split.seed
    # a sub-model only sorts leads into quarters: it learns faster than the main model
    model = config.model.model_copy(
        update={
            "learning_rate": max(config.model.learning_rate, config.grades.learning_rate),
            "early_stopping_rounds": min(config.model.early_stopping_rounds, 30),
        }
    )
    X_train, y_train = rows.train[0][columns].to_numpy(np.float64), rows.train[1]
    if rows.crossfit:
        booster, raw_cal = fit_crossfit(X_train, y_train, sub_spec, model, folds, seed)
        y_cal = y_train
    else:
        valid = rows.valid
        booster = fit_booster(
            X_train,
            y_train,
            None if valid is None else valid[0][columns].to_numpy(np.float64),
            None if valid is None else valid[1],
            sub_spec,
            model,
            seed,
        )
        X_cal, y_cal = rows.calibration
        raw_cal = np.asarray(booster.predict(X_cal[columns].to_numpy(np.float64), raw_score=True))
    calibrator = Calibrator(config.model.calibration, seed).fit(raw_cal, y_cal)
    return SubModel(list(columns), booster, calibrator, []), raw_cal, y_cal


def fit_grades(
    rows: GradeRows, spec: FeatureSpec, config: TrainConfig, sql_probability: float
) -> Grades:
    """Sub-models, quartile cuts, temperature cuts, stage rule and PQL threshold."""
    gc = config.grades
    grades = Grades(list(spec.feature_names))
    cols = parts(spec, gc)
    X_cal = rows.train[0] if rows.crossfit else rows.calibration[0]
    folds = min(max(config.split.crossfit_folds, 2), 3)  # out-of-fold scores to cut at
    for name in ("fit", "engagement"):
        if not cols[name]:
            grades.notes[name] = f"no {name} columns in this data: {name} and grid are missing"
            continue
        sub, raw, _ = fit_sub(cols[name], rows, spec, config, folds)
        sub.cuts = [float(q) for q in np.quantile(raw, [0.25, 0.5, 0.75])]
        setattr(grades, name, sub)
    if cols["usage"]:
        sub, raw, y = fit_sub(cols["usage"], rows, spec, config, folds)
        used = X_cal[cols["usage"]].fillna(0).to_numpy().sum(axis=1) > 0
        sub.cuts = pql_cut(raw[used], y[used], sql_probability)
        grades.usage = sub
        if not sub.cuts:
            grades.notes["pql"] = (
                f"product usage never converts at the SQL rate ({sql_probability:.0%}) on "
                f"{MIN_GROUP}+ leads of the calibration slice: no lead is a PQL"
            )
    else:
        grades.notes["pql"] = (
            "no product-usage data (trial, activation, feature use, seats): pql is always false"
        )
    if spec.kind == "crm":
        grades.temperature = temperature_rule(X_cal, spec, gc)
        grades.stage = stage_rule(spec, gc)
    else:
        grades.notes["temperature"] = "a flat export has no activity dates: temperature is missing"
        grades.stage = flat_stage(spec, gc, grades.notes)
    return grades


def pql_cut(raw: np.ndarray, y: np.ndarray, sql_probability: float) -> list[float]:
    """The lowest usage score above which, among leads that used the product, conversion on
    the calibration rows reaches the SQL line (resting on at least MIN_GROUP leads)."""
    if len(raw) < MIN_GROUP:
        return []
    order = np.argsort(-raw, kind="stable")
    rate = np.cumsum(y[order]) / np.arange(1, len(raw) + 1)  # conversion of the top k
    ok = np.flatnonzero((rate >= sql_probability) & (np.arange(1, len(raw) + 1) >= MIN_GROUP))
    return [float(raw[order][ok[-1]])] if len(ok) else []


def temperature_rule(X_cal: pd.DataFrame, spec: FeatureSpec, gc: GradeConfig) -> dict:
    positive = [k for k in KINDS if k not in NEGATIVE_KINDS]
    short, month = min(spec.windows_days), window_of(spec, 30)
    recent = [f"{k}_{short}d" for k in positive if f"{k}_{short}d" in spec.feature_names]
    monthly = [f"{k}_{month}d" for k in positive if f"{k}_{month}d" in spec.feature_names]
    heat = recent_activity(X_cal.to_numpy(np.float64), spec.feature_names, recent, monthly)
    active = heat[heat > 0]
    if len(active) == 0:
        return {"recent": recent, "month": monthly, "cuts": [np.inf, np.inf]}
    hot = float(np.quantile(heat, 1 - gc.hot_share))
    warm = float(np.quantile(heat, max(1 - 2 * gc.hot_share, 0.0)))
    warm = max(warm, float(active.min()))  # warm needs some recent activity
    hot = max(hot, warm)
    return {
        "recent": recent,
        "month": monthly,
        "cuts": [warm, hot],
        "rule": f"actions in the last {short} days count twice, in the last {month} days once; "
        f"hot from {hot:g}, warm from {warm:g}",
    }


def stage_rule(spec: FeatureSpec, gc: GradeConfig) -> dict:
    unknown = sorted(set(gc.stages) - set(KINDS))
    if unknown:
        raise ConfigError(
            f"grades.stages: unknown kind of action {', '.join(unknown)}; the kinds are "
            f"{', '.join(KINDS)}"
        )
    recent_w = window_of(spec, gc.stage_days)
    longest = max(spec.windows_days)
    rule: dict = {"recent": {}, "ever": {}}
    for kind, stage in gc.stages.items():
        for window, w in (("recent", recent_w), ("ever", longest)):
            name = f"{kind}_{w}d"
            if name in spec.feature_names:
                rule[window].setdefault(stage, []).append(name)
    rule["rule"] = (
        f"the strongest stage among actions of the last {recent_w} days, else of the last "
        f"{longest} days, else ToFu"
    )
    return rule


def flat_stage(spec: FeatureSpec, gc: GradeConfig, notes: dict[str, str]) -> dict | None:
    col = gc.stage_column
    if col is None:
        notes["stage"] = "no stage column configured (grades.stage_column): stage is missing"
        return None
    if col not in spec.categorical:
        notes["stage"] = (
            f"stage column {col!r} is not a category column of this model: stage is missing"
        )
        return None
    vocab = spec.categories[col]
    codes = {str(i): gc.stage_values[v] for i, v in enumerate(vocab) if v in gc.stage_values}
    return {"column": col, "codes": codes, "rule": f"from the column {col!r}"}
