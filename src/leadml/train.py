"""`train(data_path, config, settings) -> TrainResult`: the training pipeline, step by step.

An engine (`local_engine` in memory, or `dask_engine`) reads and checks the data, labels it
as of the cut-offs (`labels`), splits it (`split`), builds the features and boosts; then
`finish`, the same for every engine: calibration, bands, baseline, evaluation (and the
Bayes-optimal figures on synthetic data), the model card; then the MLflow run, registry,
promotion (`promote`) and export.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from leadml import accounting, bands, errors, evaluate, grades_backtest, grades_fit, profile, synth
from leadml.boosting import fit_baseline
from leadml.calibration import Calibrator
from leadml.config import Settings, TrainConfig
from leadml.engine import Engine, Prepared, TestLeads
from leadml.files import write_frame
from leadml.model import LeadScorer
from leadml.progress import Stages
from leadml.promote import promote_if_better, version_tags

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    metrics: dict
    baseline: dict | None
    bayes: dict | None
    band_table: pd.DataFrame
    thresholds: bands.BandThresholds
    data_summary: dict
    warnings: list[str]
    rejects_path: Path | None
    scorer: LeadScorer = field(repr=False)
    run_id: str | None = None
    version: str | None = None
    promoted: bool = False
    promotion_note: str = ""
    export_path: Path | None = None
    grades: dict[str, pd.DataFrame] = field(default_factory=dict)  # backtest on the test leads


@dataclass(frozen=True)
class Artefacts:
    """The evaluation's tables and arrays that go to MLflow, and the test leads (for the
    input example and for comparing with the champion)."""

    reliability: pd.DataFrame
    lift: pd.DataFrame
    importance: pd.DataFrame
    bands: pd.DataFrame
    rejects: pd.DataFrame
    y_test: np.ndarray
    p_test: np.ndarray
    p_base: np.ndarray | None
    config: TrainConfig
    test: TestLeads


def fit(
    data_path: Path, config: TrainConfig, progress: bool = False, engine: Engine | None = None
) -> tuple[TrainResult, Artefacts]:
    """Everything up to (not including) MLflow: the result and what to log with it.

    `engine` is None for the in-memory engine (`local_engine.LocalEngine`), or a
    `leadml.dask_engine.DaskEngine`; the last steps (`finish`) are the same for both.
    """
    if engine is None:
        from leadml.local_engine import LocalEngine

        engine = LocalEngine()
    steps = Stages(7, progress)  # 4 engine steps (read, label, features, boost) + finish's 3
    prep, test = engine.prepare(Path(data_path), config, steps, progress)
    return finish(Path(data_path), config, prep, test, steps)


def _truth_metrics(
    data_path: Path, keys: pd.DataFrame | None, horizon_days: int | None, y: np.ndarray
) -> tuple[dict | None, str]:
    """Bayes-optimal metrics on the test rows (`keys`: their lead_id and _as_of) from the
    synthetic truth file, when there is one."""
    found = synth.read_truth(data_path) if data_path.is_dir() else None
    if found is None:
        return None, ""
    truth, meta = found
    if keys is None or horizon_days != meta["horizon_days"]:
        return (
            None,
            f"truth file is for a {meta['horizon_days']}-day horizon; Bayes-optimal figures skipped",
        )
    key = pd.MultiIndex.from_arrays([truth["lead_id"].astype(str), truth["as_of"].astype(str)])
    want = pd.MultiIndex.from_arrays(
        [
            keys["lead_id"].astype(str).to_numpy(),
            pd.to_datetime(keys["_as_of"]).dt.strftime("%Y-%m-%d").to_numpy(),
        ]
    )
    p = pd.Series(truth["true_probability"].to_numpy(), index=key).reindex(want).to_numpy()
    if np.isnan(p).any():
        return (
            None,
            "the truth file has no probability for some test rows (different cut-offs?); Bayes-optimal figures skipped",
        )
    return evaluate.metrics(y, p), ""


def _importance(scorer: LeadScorer) -> pd.DataFrame:
    gain = scorer.booster.feature_importance("gain")
    frame = pd.DataFrame(
        {
            "feature": [scorer.spec.labels.get(n, n) for n in scorer.spec.feature_names],
            "column": scorer.spec.feature_names,
            "gain": gain,
        }
    )
    frame["gain_share"] = frame["gain"] / max(frame["gain"].sum(), 1e-12)
    return frame.sort_values("gain", ascending=False).reset_index(drop=True)


def finish(
    data_path: Path, config: TrainConfig, prep: Prepared, test: TestLeads, steps: Stages
) -> tuple[TrainResult, Artefacts]:
    """Calibration, bands, baseline, evaluation and the model card: the same for every engine."""
    steps.next("calibrating and baseline")
    sc = config.split
    spec, booster = prep.spec, prep.booster
    cal = Calibrator(config.model.calibration, sc.seed).fit(prep.raw_cal, prep.y_cal)
    thresholds = bands.fit_thresholds(config.bands, cal.transform(prep.raw_cal))
    scorer = LeadScorer(
        spec, booster, cal, thresholds, profile=profile.build(test.features(), spec)
    )
    y_test = prep.y_test
    p_test = cal.transform(prep.raw_test)
    band_test = bands.to_band(p_test, thresholds)
    steps.next("grades")
    grade_tables: dict[str, pd.DataFrame] = {}
    grade_metrics: dict[str, float] = {}
    if prep.grade_rows is not None:
        scorer.grades = grades_fit.fit_grades(prep.grade_rows, spec, config, thresholds.sql)
        labels = grades_backtest.test_labels(scorer.grades, test)
        grade_tables = grades_backtest.backtest(y_test, labels, band_test)
        grade_metrics = grades_backtest.sub_model_metrics(scorer.grades, test, y_test)
    m = evaluate.metrics(y_test, p_test) | grade_metrics
    baseline, p_base = None, None
    if config.model.baseline and prep.baseline_rows is not None:
        model = fit_baseline(*prep.baseline_rows, spec, sc.seed)
        p_base = test.predict_test(lambda X: model.predict_proba(X)[:, 1])
        baseline = evaluate.metrics(y_test, p_base)
    steps.next("evaluating")
    warnings = list(prep.warnings)
    horizon = prep.summary.get("horizon_days")
    bayes, note = _truth_metrics(data_path, prep.test_keys, horizon, y_test)
    if note:
        warnings.append(note)

    band_table = evaluate.band_backtest(y_test, p_test, band_test)
    reliability = evaluate.reliability_table(y_test, p_test)
    lift = evaluate.lift_table(y_test, p_test)
    importance = _importance(scorer)
    summary = {
        **prep.summary,
        "kind": prep.kind,
        "path": str(data_path),
        "hash": prep.source["hash"],
        "tables": {name: c.as_dict() for name, c in prep.tables.items()},
        "rejected_rows": len(prep.rejects),
        "read_notes": prep.notes,
        "split": prep.split_method,
        "slices": prep.slices,
        "features": len(spec.feature_names),
        "best_iteration": int(
            booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        ),
        "calibration": cal.method_,
        "crossfit_folds": sc.crossfit_folds if prep.crossfit else 0,
        "seconds": steps.seconds,
    }
    scorer.card = {
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "data": summary,
        "metrics": m,
        "baseline_metrics": baseline,
        "bayes_metrics": bayes,
        "thresholds": thresholds.as_dict(),
        "band_backtest": band_table.to_dict("records"),
        "backtest_histogram": evaluate.probability_histogram(y_test, p_test),
        # the workspace draws its reliability and lift charts from these (the test leads)
        "reliability": reliability.to_dict("records"),
        "lift": lift.to_dict("records"),
        "features": [{"name": n, "label": spec.labels.get(n, n)} for n in spec.feature_names],
        "target": prep.target,
        "missing_values": list(config.flat.missing_values),
        "horizon_days": config.label.horizon_days,
        "warnings": warnings,
        "grades": None
        if scorer.grades is None
        else scorer.grades.card()
        | {"backtest": {k: t.to_dict("records") for k, t in grade_tables.items()}},
    }
    steps.close()
    result = TrainResult(
        m,
        baseline,
        bayes,
        band_table,
        thresholds,
        summary,
        warnings,
        None,
        scorer=scorer,
        grades=grade_tables,
    )
    files = Artefacts(
        reliability,
        lift,
        importance,
        band_table,
        prep.rejects.frame,
        y_test,
        p_test,
        p_base,
        config,
        test,
    )
    return result, files


def _write_artefacts(out: Path, result: TrainResult, files: Artefacts) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(files.config.model_dump(), sort_keys=False))
    (out / "data_summary.json").write_text(json.dumps(result.data_summary, indent=2, default=str))
    all_metrics = {
        "model": result.metrics,
        "baseline": result.baseline,
        "bayes_optimal": result.bayes,
    }
    (out / "metrics.json").write_text(json.dumps(all_metrics, indent=2))
    for name in ("reliability", "lift", "importance", "bands", "rejects"):
        getattr(files, name).to_csv(out / f"{name}.csv", index=False)
    for name, table in result.grades.items():
        table.to_csv(out / f"grades_{name}.csv", index=False)
    (out / "warnings.txt").write_text("\n".join(result.warnings) + "\n")
    evaluate.plot_all(
        out / "plots",
        files.y_test,
        files.p_test,
        files.p_base,
        files.importance,
        files.reliability,
        files.lift,
    )
    if result.grades:
        evaluate.plot_grades(out / "plots", result.grades)


def train(
    data_path: Path | str,
    config: TrainConfig,
    settings: Settings,
    progress: bool = False,
    register: bool = True,
    engine: Engine | None = None,
) -> TrainResult:
    """Train, evaluate, log to MLflow, register as challenger, promote to champion when as good.

    When registering, all of it runs inside one MLflow run (`tracking.training_run`), opened
    before the data is read, so a training stopped or crashed half-way says so in MLflow.
    `engine`: None for in memory, or a `leadml.dask_engine.DaskEngine` (see `fit`)."""
    data_path = Path(data_path)
    run: contextlib.AbstractContextManager = contextlib.nullcontext()
    if register:  # MLflow is imported only then
        from leadml import tracking

        run = tracking.training_run(settings)
    with run as run_id:
        result, files = fit_keeping_rejects(data_path, config, settings, progress, engine, run_id)
        if register:
            _register(settings, config, result, files)
    return result


def fit_keeping_rejects(
    data_path: Path,
    config: TrainConfig,
    settings: Settings,
    progress: bool = False,
    engine: Engine | None = None,
    run_id: str | None = None,
) -> tuple[TrainResult, Artefacts]:
    """`fit`, with the rejected rows written to `<home>/out/train-rejects.csv` (and attached
    to the open MLflow run `run_id`, when there is one, if there were too many)."""
    rejects_path = settings.home / "out" / "train-rejects.csv"
    try:
        result, files = fit(data_path, config, progress, engine)
    except accounting.TooManyRejects as exc:
        write_frame(exc.rejects, rejects_path)
        if run_id:  # the failed run shows what was rejected
            from leadml import tracking

            tracking.log_artifact(run_id, settings, rejects_path)
        raise errors.ContractError(f"{exc} Rejected rows: {rejects_path}") from None
    result.rejects_path = write_frame(files.rejects, rejects_path)
    return result, files


def _register(
    settings: Settings, config: TrainConfig, result: TrainResult, files: Artefacts
) -> None:
    """Log the training to its MLflow run, register the model, promote it when it may be."""
    log_version(settings, config, result, files)
    assert result.version is not None
    decided = promote_if_better(
        settings,
        result.version,
        result.metrics[config.promote_metric],
        files.test,
        files.y_test,
        config.promote_metric,
    )
    result.promoted, result.promotion_note = decided.promoted, decided.note
    result.export_path = decided.export_path


def log_version(
    settings: Settings, config: TrainConfig, result: TrainResult, files: Artefacts
) -> None:
    """Log a fitted training to the open MLflow run and register it as challenger (fills
    `result.run_id` and `result.version`); promotion is decided after."""
    from leadml import tracking

    with tempfile.TemporaryDirectory() as tmp:
        art = Path(tmp) / "evaluation"
        _write_artefacts(art, result, files)
        scorer_dir = result.scorer.save(Path(tmp) / "scorer")
        example = files.test.example(3)
        flat_metrics = {f"test_{k}": v for k, v in result.metrics.items()}
        flat_metrics |= {f"baseline_{k}": v for k, v in (result.baseline or {}).items()}
        flat_metrics |= {f"bayes_{k}": v for k, v in (result.bayes or {}).items()}
        flat_metrics |= _row_metrics(result.data_summary)
        result.run_id, result.version = tracking.log_training(
            settings,
            config=config.model_dump(),
            data_summary=result.data_summary,
            metrics=flat_metrics,
            artefact_dir=art,
            scorer_dir=scorer_dir,
            spec=result.scorer.spec,
            input_example=example,
            tags={
                "leadml.kind": result.data_summary["kind"],
                "leadml.data_hash": result.data_summary["hash"],
            },
            version_tags=version_tags(result.warnings),
        )


def _row_metrics(summary: dict) -> dict[str, float]:
    """Rows read / used / rejected per input table, as MLflow metrics (rows_events_rejected)."""
    return {
        f"rows_{table}_{k}": float(counts[k])
        for table, counts in summary.get("tables", {}).items()
        for k in ("read", "used", "rejected")
    }
