"""`train(data_path, config, settings) -> TrainResult`: the training pipeline, step by step.

load and check the data -> label as of the cut-off -> split (by time when there are dates)
-> features -> leakage guard -> LightGBM + logistic baseline -> calibration -> bands ->
evaluation (and the Bayes-optimal figures on synthetic data) -> MLflow run, registry,
promotion and export.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from leadml import bands, dataset, evaluate, features, privacy, synth, values
from leadml.config import Settings, TrainConfig
from leadml.files import write_frame
from leadml.model import Calibrator, LeadScorer, fit_baseline, fit_booster, fit_crossfit
from leadml.progress import Stages

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


@dataclass
class Labelled:
    """The rows to learn from (one per lead and cut-off), their labels and the order to split in."""

    leads: pd.DataFrame
    events: pd.DataFrame | None
    y: np.ndarray
    as_of: np.ndarray | None  # cut-off per row (CRM)
    snapshot: np.ndarray | None  # 0 = newest cut-off (CRM)
    order: np.ndarray | None  # time order (oldest first) when the data has dates
    summary: dict


MIN_SNAPSHOT_ROWS = 100
AUTO_SNAPSHOT_ROWS = 200_000


def crm_cutoff(data: dataset.LeadData, horizon_days: int) -> pd.Timestamp:
    """Latest timestamp in the data minus the horizon, rounded up to midnight."""
    stamps = [data.leads["created_at"].max()]
    if "converted_at" in data.leads:
        stamps.append(data.leads["converted_at"].max())
    if data.events is not None and len(data.events):
        stamps.append(data.events["occurred_at"].max())
    return cutoff_before(stamps, horizon_days)


def cutoff_before(stamps: list, horizon_days: int) -> pd.Timestamp:
    """The latest of `stamps` minus the horizon, rounded up to midnight."""
    last = max(pd.Timestamp(s) for s in stamps if pd.notna(s))
    return (last - pd.Timedelta(days=horizon_days)).ceil("D")


def _population(
    leads: pd.DataFrame, cut: np.datetime64, horizon: np.timedelta64
) -> tuple[np.ndarray, np.ndarray]:
    """Leads that exist and have not converted at `cut`, and whether they convert within the horizon."""
    conv = leads["converted"].to_numpy(float) == 1
    conv_at = leads["converted_at"].to_numpy("datetime64[ns]")
    created = leads["created_at"].to_numpy("datetime64[ns]")
    pop = (created < cut) & ~(conv & (conv_at <= cut))
    y = conv & (conv_at > cut) & (conv_at <= cut + horizon)
    return pop, y


def population_counts(leads: pd.DataFrame, cuts: list, horizon_days: int) -> np.ndarray:
    """How many leads are in the training population at each cut-off."""
    horizon = np.timedelta64(horizon_days, "D")
    return np.array([_population(leads, np.datetime64(c, "ns"), horizon)[0].sum() for c in cuts])


def plan_cutoffs(
    config: TrainConfig, last: pd.Timestamp, count: Callable[[list], np.ndarray]
) -> list[np.datetime64]:
    """The cut-offs to learn from, newest first. `count(cuts)` gives the population at each
    cut-off (over all leads, however they are stored)."""
    lc = config.label
    every = pd.Timedelta(days=lc.snapshot_every_days or lc.horizon_days)
    if lc.snapshots == "auto":
        pop0 = int(count([last.to_datetime64()])[0])
        wanted = int(np.clip(np.ceil(AUTO_SNAPSHOT_ROWS / max(pop0, 1)), 4, 8))
    else:
        wanted = lc.snapshots
    cuts = [(last - j * every).to_datetime64().astype("datetime64[ns]") for j in range(wanted)]
    sizes = count(cuts)
    if sizes[0] == 0:
        raise dataset.ContractError(
            f"no lead was created before the cut-off {last} without having converted already; set label.as_of to a later date"
        )
    kept = [cuts[0]]
    for j in range(1, wanted):
        if sizes[j] < MIN_SNAPSHOT_ROWS:
            break
        kept.append(cuts[j])
    return kept


def label_rows(leads: pd.DataFrame, cuts: list, horizon_days: int) -> pd.DataFrame:
    """One row per lead and cut-off where the lead is in the population, with the cut-off
    (`_as_of`), its rank (`_snapshot`, 0 = newest) and the label (`_y`)."""
    horizon = np.timedelta64(horizon_days, "D")
    frames = []
    for j, cut in enumerate(cuts):
        pop, y = _population(leads, np.datetime64(cut, "ns"), horizon)
        n = int(pop.sum())
        frames.append(
            leads.loc[pop].assign(
                _as_of=np.full(n, cut, dtype="datetime64[ns]"),
                _snapshot=np.full(n, j),
                _y=y[pop].astype(float),
            )
        )
    return pd.concat(frames, ignore_index=True)


LABEL_COLUMNS = ["_as_of", "_snapshot", "_y"]


def label(data: dataset.LeadData, config: TrainConfig) -> Labelled:
    """Training rows and labels.

    Flat exports: one row per lead, the target as given. CRM tables: one row per lead and
    cut-off; a row exists when the lead was created before the cut-off and had not
    converted yet, and its label is a conversion within the horizon after the cut-off.
    Cut-offs go back from `as_of` every `snapshot_every_days`, so the newest ones can be
    held out as a genuinely later period.
    """
    if data.kind == "flat":
        order = None
        if data.date_column:
            order = np.argsort(data.leads[data.date_column].to_numpy(), kind="stable")
        y = data.leads[data.target].to_numpy(float)
        summary: dict[str, Any] = {"rows": len(y), "conversion_rate": round(float(y.mean()), 4)}
        if data.date_column:
            summary |= {
                "date_min": str(data.leads[data.date_column].min()),
                "date_max": str(data.leads[data.date_column].max()),
            }
        return Labelled(data.leads, None, y, None, None, order, summary)
    lc = config.label
    last = (
        values.timestamp(lc.as_of, "label.as_of") if lc.as_of else crm_cutoff(data, lc.horizon_days)
    )
    cuts = plan_cutoffs(config, last, lambda c: population_counts(data.leads, c, lc.horizon_days))
    rows = label_rows(data.leads, cuts, lc.horizon_days)
    as_of, snapshot, y = (rows.pop(c).to_numpy() for c in LABEL_COLUMNS)
    leads = rows
    order = np.lexsort((leads["created_at"].to_numpy(), as_of))
    summary = crm_summary(
        config, cuts, len(y), leads["lead_id"].nunique(),
        len(data.events) if data.events is not None else 0,
        leads["created_at"].min(), leads["created_at"].max(), float(y.mean()),
    )  # fmt: skip
    return Labelled(leads, data.events, y.astype(float), as_of, snapshot, order, summary)


def crm_summary(
    config: TrainConfig, cuts: list, rows: int, leads: int, events: int, first, last, rate: float
) -> dict[str, Any]:
    return {
        "rows": int(rows),
        "leads": int(leads),
        "as_of": str(pd.Timestamp(cuts[0])),
        "cutoffs": [str(pd.Timestamp(c).date()) for c in cuts],
        "horizon_days": config.label.horizon_days,
        "events": int(events),
        "date_min": str(first),
        "date_max": str(last),
        "conversion_rate": round(rate, 4),
    }


def split(lab: Labelled, config: TrainConfig) -> dict[str, np.ndarray]:
    """Row positions of train / valid / calibration / test.

    With four or more CRM cut-offs: the newest cut-off is the test slice, the one before it
    calibration, the one before that validation, the rest training, so every slice is a
    later period than the ones it is judged against. Otherwise: by time order when the data
    has dates (oldest to train, newest to test), else stratified random.
    """
    n, s = len(lab.y), config.split
    if lab.snapshot is not None and lab.snapshot.max() >= 3:
        out = {
            name: np.flatnonzero(lab.snapshot == j)
            for j, name in enumerate(("test", "calibration", "valid"))
        }
        out["train"] = np.flatnonzero(lab.snapshot >= 3)
        out["method"] = np.array(["time (by cut-off)"])
        return out
    sizes = {"test": s.test, "calibration": s.calibration, "valid": s.valid}
    if lab.order is not None:
        order, out, end = lab.order, {}, n
        for name, share in sizes.items():  # newest first
            k = max(int(round(share * n)), 1)
            out[name] = np.sort(order[end - k : end])
            end -= k
        out["train"] = np.sort(order[:end])
        out["method"] = np.array(["time"])
        return out
    from sklearn.model_selection import train_test_split

    rest = np.arange(n)
    out = {}
    for name, share in sizes.items():
        k = max(int(round(share * n)), 1)
        rest, part = train_test_split(rest, test_size=k, stratify=lab.y[rest], random_state=s.seed)
        out[name] = np.sort(part)
    out["train"] = np.sort(rest)
    out["method"] = np.array(["stratified random"])
    return out


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


def input_example(
    spec: features.FeatureSpec, leads: pd.DataFrame, events: pd.DataFrame | None, as_of
) -> pd.DataFrame:
    """A few raw test leads in the shape the pyfunc takes, with no personal data: MLflow
    stores it as the model's input example."""
    fields = [c for c in spec.input_fields() if c in leads]
    leads = privacy.scrub_frame(leads[fields])
    leads = leads.assign(**{spec.id_column: leads[spec.id_column].astype(str)})
    if spec.kind != "crm":
        numeric = [c.name for c in spec.columns if c.kind == "numeric" and c.name in leads]
        return leads.assign(
            **{c: pd.to_numeric(leads[c], errors="coerce").astype(float) for c in numeric}
        ).reset_index(drop=True)
    assert events is not None  # CRM rows always have events (maybe none of them)
    cut = pd.Timestamp(np.max(as_of))
    ev = events[events["lead_id"].isin(leads["lead_id"]) & (events["occurred_at"] < cut)]
    return dataset.events_to_records(leads, ev, as_of).reset_index(drop=True)


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


def read_options(config: TrainConfig) -> dataset.ReadOptions:
    """How the training config says input files are read."""
    return dataset.ReadOptions(
        sep=config.flat.sep, date_format=config.input.date_format,
        max_reject_share=config.input.max_reject_share,
        missing_values=tuple(config.flat.missing_values),
    )  # fmt: skip


def load_for_training(data_path: Path, config: TrainConfig) -> dataset.LeadData:
    f = config.flat
    return dataset.load(
        data_path, read_options(config), target=f.target, id_column=f.id_column, drop=f.drop,
        date_column=config.split.date_column,
    )  # fmt: skip


@dataclass
class Prepared:
    """What an engine (this module's in-memory one, or `leadml.dask_engine`) hands to the
    steps every engine shares: the spec and booster, the raw scores of the calibration and
    test rows, and ways to reach the test rows again."""

    kind: str
    source: dict
    target: str | None
    rejects: dataset.Rejects
    summary: dict
    split_method: str
    slices: dict[str, int]
    spec: features.FeatureSpec
    booster: Any
    crossfit: bool
    raw_cal: np.ndarray
    y_cal: np.ndarray
    raw_test: np.ndarray
    y_test: np.ndarray
    test_keys: pd.DataFrame | None  # CRM: lead_id and _as_of of each test row
    baseline_rows: tuple[pd.DataFrame, np.ndarray] | None  # what the baseline learns from
    on_test: Callable[[Callable[[pd.DataFrame], np.ndarray]], np.ndarray]  # fn over test features
    score_test: Callable[[LeadScorer], np.ndarray | None]  # another model on the test leads
    example: Callable[[int], pd.DataFrame]  # a few raw test leads, as the pyfunc takes them
    tables: dict[str, dataset.TableCount] = field(default_factory=dict)  # rows in/used/rejected
    notes: list[str] = field(default_factory=list)  # how the input files were read
    warnings: list[str] = field(default_factory=list)


def fit(
    data_path: Path, config: TrainConfig, progress: bool = False, engine: Any = None
) -> tuple[TrainResult, dict]:
    """Everything up to (not including) MLflow: returns the result and the files to log.

    `engine` is None for the in-memory engine, or a `leadml.dask_engine.DaskEngine`, which
    reads, labels, builds features and boosts on a Dask cluster; the last steps (calibration,
    bands, baseline, evaluation, model card) are the same for both.
    """
    steps = Stages(6, progress)
    prepare = _prepare if engine is None else engine.prepare
    prep = prepare(Path(data_path), config, steps, progress)
    return _finish(Path(data_path), config, prep, steps)


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


def _leak_warnings(X: pd.DataFrame, y: np.ndarray, spec, config: TrainConfig) -> list[str]:
    return [
        LeakFinding(col, auc)
        for col, auc in evaluate.find_leaks(X, y, spec.labels, config.leakage_auc)
    ]


def leaks(result: TrainResult) -> list[LeakFinding]:
    """The leakage guard's findings among a training's warnings."""
    return [w for w in result.warnings if isinstance(w, LeakFinding)]


def _prepare(data_path: Path, config: TrainConfig, steps: Stages, progress: bool) -> Prepared:
    """The in-memory engine: everything up to the raw scores of the calibration slice."""
    steps.next("reading data")
    data = load_for_training(data_path, config)
    dataset.check_reject_share(data, config.input.max_reject_share)
    steps.next("labelling cut-offs")
    lab = label(data, config)
    if len(np.unique(lab.y)) < 2:
        raise dataset.ContractError(
            f"{data_path}: every lead in the training population has the same outcome ({lab.y[0]:.0f}); a model needs both conversions and non-conversions"
        )
    parts = split(lab, config)
    spec_data = dataset.LeadData(
        data.kind,
        lab.leads.iloc[parts["train"]],
        None,
        data.id_column,
        data.target,
        data.date_column,
        data.rejects,
        data.source,
    )
    steps.next("building features")
    spec = features.fit_spec(spec_data, config)
    feats = features.build_features(
        lab.leads, lab.events, spec, as_of=lab.as_of, source=Path(data.source["paths"][0]).name
    )
    data.rejects.extend(feats.rejects)
    tables = dataset.check_reject_share(data, config.input.max_reject_share)
    usable = lab.leads.index.isin(feats.X.index)
    pos = {k: v[usable[v]] for k, v in parts.items() if k != "method"}
    Xall = feats.X.reindex(lab.leads.index)
    X = {k: Xall.iloc[v] for k, v in pos.items()}
    Y = {k: lab.y[v] for k, v in pos.items()}
    for name, rows in X.items():
        if len(np.unique(Y[name])) < 2:
            raise dataset.ContractError(
                f"the {name} slice ({len(rows)} leads) has only one outcome; more data or a different split is needed"
            )
    warnings = _leak_warnings(X["train"], Y["train"], spec, config)
    for col, why in spec.skipped.items():
        log.info("column %r not used: %s", col, why)

    steps.next("boosting")
    sc = config.split
    crossfit = (
        str(parts["method"][0]) == "stratified random"
        and sc.crossfit_folds >= 2
        and len(lab.y) <= sc.crossfit_max_rows
    )
    if crossfit:
        fit_rows = ("train", "valid", "calibration")
        X_fit = np.concatenate([X[k].to_numpy() for k in fit_rows])
        Y_fit = np.concatenate([Y[k] for k in fit_rows])
        booster, raw_cal = fit_crossfit(
            X_fit, Y_fit, spec, config.model, sc.crossfit_folds, sc.seed, progress
        )
        y_cal = Y_fit
    else:
        booster = fit_booster(
            X["train"].to_numpy(),
            Y["train"],
            X["valid"].to_numpy(),
            Y["valid"],
            spec,
            config.model,
            sc.seed,
            progress,
        )
        raw_cal = np.asarray(booster.predict(X["calibration"].to_numpy(), raw_score=True))
        y_cal = Y["calibration"]
    Xb = pd.concat([X["train"], X["valid"]])
    Yb = np.concatenate([Y["train"], Y["valid"]])
    if len(Yb) > config.model.baseline_max_rows:
        keep = np.random.default_rng(0).choice(
            len(Yb), config.model.baseline_max_rows, replace=False
        )
        Xb, Yb = Xb.iloc[keep], Yb[keep]
    test = pos["test"]
    test_as_of = None if lab.as_of is None else lab.as_of[test]

    def score_test(other: LeadScorer) -> np.ndarray | None:
        leads = lab.leads.iloc[test]
        out, _ = other.score_leads(leads, lab.events, as_of=test_as_of)
        return out["probability"].to_numpy() if len(out) == len(leads) else None

    def example(k: int) -> pd.DataFrame:
        return input_example(
            spec,
            lab.leads.iloc[test[:k]],
            lab.events,
            None if test_as_of is None else test_as_of[:k],
        )

    return Prepared(
        kind=data.kind, source=data.source, target=data.target, rejects=data.rejects,
        summary=lab.summary, split_method=str(parts["method"][0]),
        slices={k: int(len(v)) for k, v in pos.items()}, spec=spec, booster=booster,
        crossfit=crossfit, raw_cal=raw_cal, y_cal=y_cal,
        raw_test=np.asarray(booster.predict(X["test"].to_numpy(), raw_score=True)),
        y_test=Y["test"],
        test_keys=None if lab.as_of is None else pd.DataFrame(
            {"lead_id": lab.leads["lead_id"].iloc[test].to_numpy(), "_as_of": test_as_of}
        ),
        baseline_rows=(Xb, Yb), on_test=lambda fn: fn(X["test"]), score_test=score_test,
        example=example, tables=tables, notes=data.notes, warnings=warnings,
    )  # fmt: skip


def _finish(
    data_path: Path, config: TrainConfig, prep: Prepared, steps: Stages
) -> tuple[TrainResult, dict]:
    """Calibration, bands, baseline, evaluation and the model card: the same for every engine."""
    steps.next("calibrating and baseline")
    sc = config.split
    spec, booster = prep.spec, prep.booster
    cal = Calibrator(config.model.calibration, sc.seed).fit(prep.raw_cal, prep.y_cal)
    thresholds = bands.fit_thresholds(config.bands, cal.transform(prep.raw_cal))
    scorer = LeadScorer(spec, booster, cal, thresholds)
    y_test = prep.y_test
    p_test = cal.transform(prep.raw_test)
    band_test = bands.to_band(p_test, thresholds)
    m = evaluate.metrics(y_test, p_test)
    baseline, p_base = None, None
    if config.model.baseline and prep.baseline_rows is not None:
        model = fit_baseline(*prep.baseline_rows, spec, sc.seed)
        p_base = prep.on_test(lambda X: model.predict_proba(X)[:, 1])
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
        "features": [{"name": n, "label": spec.labels.get(n, n)} for n in spec.feature_names],
        "target": prep.target,
        "missing_values": list(config.flat.missing_values),
        "horizon_days": config.label.horizon_days,
        "warnings": warnings,
    }
    steps.close()
    result = TrainResult(
        m, baseline, bayes, band_table, thresholds, summary, warnings, None, scorer=scorer
    )
    files = {
        "reliability": reliability, "lift": lift, "importance": importance, "bands": band_table,
        "rejects": prep.rejects.frame, "y_test": y_test, "p_test": p_test, "p_base": p_base,
        "config": config, "score_test": prep.score_test, "example": prep.example,
    }  # fmt: skip
    return result, files


def _write_artefacts(out: Path, result: TrainResult, files: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(files["config"].model_dump(), sort_keys=False))
    (out / "data_summary.json").write_text(json.dumps(result.data_summary, indent=2, default=str))
    all_metrics = {
        "model": result.metrics,
        "baseline": result.baseline,
        "bayes_optimal": result.bayes,
    }
    (out / "metrics.json").write_text(json.dumps(all_metrics, indent=2))
    for name in ("reliability", "lift", "importance", "bands", "rejects"):
        files[name].to_csv(out / f"{name}.csv", index=False)
    (out / "warnings.txt").write_text("\n".join(result.warnings) + "\n")
    evaluate.plot_all(
        out / "plots",
        files["y_test"],
        files["p_test"],
        files["p_base"],
        files["importance"],
        files["reliability"],
        files["lift"],
    )


def _champion_metric(settings: Settings, version: str, files: dict, metric: str) -> float | None:
    """The current champion's metric on the new test leads, or None when it cannot score them."""
    from leadml import tracking

    try:
        champ = tracking.load_scorer(settings, f"models:/{settings.model_name}/{version}")
        p = files["score_test"](champ)
        return None if p is None else evaluate.metrics(files["y_test"], p)[metric]
    except (KeyError, ValueError, FileNotFoundError) as exc:
        log.warning(
            "champion v%s cannot score the new test leads (%s)", version, type(exc).__name__
        )
        return None


def train(
    data_path: Path | str,
    config: TrainConfig,
    settings: Settings,
    progress: bool = False,
    register: bool = True,
    engine: Any = None,
) -> TrainResult:
    """Train, evaluate, log to MLflow, register as challenger, promote to champion when as good.

    When registering, all of it runs inside one MLflow run (`tracking.training_run`), opened
    before the data is read, so a training stopped or crashed half-way says so in MLflow.
    `engine`: None for in memory, or a `leadml.dask_engine.DaskEngine` (see `fit`)."""
    data_path = Path(data_path)
    rejects_path = settings.home / "out" / "train-rejects.csv"
    run: contextlib.AbstractContextManager = contextlib.nullcontext()
    if register:  # MLflow is imported only then
        from leadml import tracking

        run = tracking.training_run(settings)
    with run as run_id:
        try:
            result, files = fit(data_path, config, progress, engine)
        except dataset.TooManyRejects as exc:
            write_frame(exc.rejects, rejects_path)
            if run_id:  # the failed run shows what was rejected
                tracking.log_artifact(run_id, settings, rejects_path)
            raise dataset.ContractError(f"{exc} Rejected rows: {rejects_path}") from None
        result.rejects_path = write_frame(files["rejects"], rejects_path)
        if register:
            _register(settings, config, result, files)
    return result


def _register(settings: Settings, config: TrainConfig, result: TrainResult, files: dict) -> None:
    """Log the training to its MLflow run, register the model, promote it when it may be."""
    from leadml import tracking

    with tempfile.TemporaryDirectory() as tmp:
        art = Path(tmp) / "evaluation"
        _write_artefacts(art, result, files)
        scorer_dir = result.scorer.save(Path(tmp) / "scorer")
        example = files["example"](3)
        flat_metrics = {f"test_{k}": v for k, v in result.metrics.items()}
        flat_metrics |= {f"baseline_{k}": v for k, v in (result.baseline or {}).items()}
        flat_metrics |= {f"bayes_{k}": v for k, v in (result.bayes or {}).items()}
        flat_metrics |= _row_metrics(result.data_summary)
        result.run_id, result.version = tracking.log_training(
            settings, config=config.model_dump(), data_summary=result.data_summary, metrics=flat_metrics,
            artefact_dir=art, scorer_dir=scorer_dir, spec=result.scorer.spec, input_example=example, tags={"leadml.kind": result.data_summary["kind"], "leadml.data_hash": result.data_summary["hash"]},
            version_tags=_version_tags(result),
        )  # fmt: skip
    promote_if_better(settings, result, files, config.promote_metric)


def _row_metrics(summary: dict) -> dict[str, float]:
    """Rows read / used / rejected per input table, as MLflow metrics (rows_events_rejected)."""
    return {
        f"rows_{table}_{k}": float(counts[k])
        for table, counts in summary.get("tables", {}).items()
        for k in ("read", "used", "rejected")
    }


def promote_if_better(settings: Settings, result: TrainResult, files: dict, metric: str) -> None:
    """Make the new version champion when it may be (no leakage finding, the champion's input
    contract) and is at least as good as the champion on the same test leads.

    Decided and done under the champion lock, so two trainings finishing together compare
    against the champion that is really there."""
    from leadml import champion, tracking

    assert result.version is not None, "register the model before promoting it"
    with champion.locked(settings):
        tracking.reconcile(settings)
        current = tracking.alias_version(settings, tracking.CHAMPION)
        why = tracking.refusal(settings, result.version)
        mine = result.metrics[metric]
        if why:
            result.promotion_note = why
        elif current is None:
            result.promoted, result.promotion_note = True, "no champion yet"
        else:
            theirs = _champion_metric(settings, current, files, metric)
            if theirs is None:
                result.promotion_note = f"champion v{current} cannot score this data; promote by hand with `leadml promote --version {result.version}`"
            else:
                better = mine >= theirs if metric == "roc_auc" else mine <= theirs
                result.promoted = better
                result.promotion_note = f"{metric} {mine:.4f} vs champion v{current} {theirs:.4f} on the same test leads"
        if result.promoted:
            result.export_path = tracking.promote(settings, result.version, force=True)


def _version_tags(result: TrainResult) -> dict[str, str]:
    """Registry tags set with the version: the leakage guard's findings keep it from ever
    being promoted automatically, and tell a person who looks why."""
    found = leaks(result)
    if not found:
        return {}
    text = "; ".join(f"column {w.column!r} alone predicts the outcome with AUC {w.auc:.3f}"
                     for w in found)  # fmt: skip
    return {"leadml.leakage": text[:1000]}
