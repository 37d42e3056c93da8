"""The in-memory engine: pandas tables on one machine, for training and batch scoring.

`prepare` reads and checks the input, labels (`labels`), splits (`split`), builds the
features and boosts; `score_file` scores a CRM folder or a flat export into one file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadml import accounting, dataset, errors, evaluate, features, labels, privacy, score_io
from leadml.boosting import fit_booster, fit_crossfit
from leadml.config import Settings, TrainConfig
from leadml.engine import Prepared
from leadml.files import write_frame
from leadml.grades_fit import GradeRows
from leadml.model import LeadScorer
from leadml.progress import Stages
from leadml.records import from_tables
from leadml.split import STRATIFIED, split

if TYPE_CHECKING:
    import lightgbm as lgb

    from leadml.scoring import Keep

log = logging.getLogger(__name__)


def read_options(config: TrainConfig) -> dataset.ReadOptions:
    """How the training config says input files are read."""
    return dataset.ReadOptions(
        sep=config.flat.sep,
        date_format=config.input.date_format,
        max_reject_share=config.input.max_reject_share,
        missing_values=tuple(config.flat.missing_values),
    )


def load_for_training(data_path: Path, config: TrainConfig) -> dataset.LeadData:
    """The training input, read and checked as the config says."""
    f = config.flat
    return dataset.load(
        data_path,
        read_options(config),
        target=f.target,
        id_column=f.id_column,
        drop=f.drop,
        date_column=config.split.date_column,
    )


def input_example(
    spec: features.FeatureSpec,
    leads: pd.DataFrame,
    events: pd.DataFrame | None,
    as_of: np.ndarray | None,
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
    assert events is not None and as_of is not None  # CRM rows always have both
    cut = pd.Timestamp(np.max(as_of))
    ev = events[events["lead_id"].isin(leads["lead_id"]) & (events["occurred_at"] < cut)]
    return from_tables(leads, ev, as_of).reset_index(drop=True)


class LocalTestLeads:
    """The test leads of an in-memory training: their features, raw rows and cut-offs."""

    def __init__(
        self,
        spec: features.FeatureSpec,
        X: pd.DataFrame,
        leads: pd.DataFrame,
        events: pd.DataFrame | None,
        as_of: np.ndarray | None,
    ):
        self.spec, self.X, self.leads, self.events, self.as_of = spec, X, leads, events, as_of

    def predict_test(self, fn: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
        return fn(self.X)

    def features(self) -> pd.DataFrame:
        return self.X

    def score_test(self, scorer: LeadScorer) -> np.ndarray | None:
        out, _ = scorer.score_leads(self.leads, self.events, as_of=self.as_of)
        return out["probability"].to_numpy() if len(out) == len(self.leads) else None

    def example(self, k: int) -> pd.DataFrame:
        as_of = None if self.as_of is None else self.as_of[:k]
        return input_example(self.spec, self.leads.iloc[:k], self.events, as_of)


@dataclass(frozen=True)
class TrainingRows:
    """A training input read, checked, labelled and split, with the features of the usable
    rows of each slice: what an engine boosts from (`training_rows`)."""

    data: dataset.LeadData
    lab: labels.Labelled
    method: str  # how it was split (`split.BY_CUTOFF`, `BY_TIME`, `STRATIFIED`)
    spec: features.FeatureSpec
    pos: dict[str, np.ndarray]  # positions in `lab.leads` of each slice's usable rows
    X: dict[str, pd.DataFrame]  # their features (columns `spec.feature_names`)
    Y: dict[str, np.ndarray]  # their labels
    tables: dict[str, accounting.TableCount]
    warnings: list[str]

    def crossfit(self, config: TrainConfig) -> bool:
        """Whether the booster is cross-fitted: rows split at random, and few enough of them."""
        sc = config.split
        return (
            self.method == STRATIFIED
            and sc.crossfit_folds >= 2
            and len(self.lab.y) <= sc.crossfit_max_rows
        )

    def fit_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The features and labels a cross-fit learns from (train, valid and calibration rows,
        in that order); its out-of-fold scores calibrate."""
        fit = ("train", "valid", "calibration")
        return (
            np.concatenate([self.X[k].to_numpy() for k in fit]),
            np.concatenate([self.Y[k] for k in fit]),
        )

    def prepared(
        self,
        booster: lgb.Booster,
        crossfit: bool,
        raw_cal: np.ndarray,
        y_cal: np.ndarray,
        baseline_max_rows: int,
    ) -> Prepared:
        """What `train.finish` takes, from these rows and the boosting's results."""
        data, test_as_of = self.data, self.test_as_of()
        keys = None
        if test_as_of is not None:
            ids = self.lab.leads["lead_id"].iloc[self.pos["test"]].to_numpy()
            keys = pd.DataFrame({"lead_id": ids, "_as_of": test_as_of})
        return Prepared(
            kind=data.kind,
            source=data.source,
            target=data.target,
            rejects=data.rejects,
            summary=self.lab.summary,
            split_method=self.method,
            slices={k: int(len(v)) for k, v in self.pos.items()},
            spec=self.spec,
            booster=booster,
            crossfit=crossfit,
            raw_cal=raw_cal,
            y_cal=y_cal,
            raw_test=np.asarray(booster.predict(self.X["test"].to_numpy(), raw_score=True)),
            y_test=self.Y["test"],
            test_keys=keys,
            baseline_rows=_baseline_rows(self.X, self.Y, baseline_max_rows),
            grade_rows=self.grade_rows(crossfit),
            tables=self.tables,
            notes=data.notes,
            warnings=self.warnings,
        )

    def grade_rows(self, crossfit: bool) -> GradeRows:
        """What the grades' sub-models learn from: the same slices as the booster (for a
        cross-fit: train, valid and calibration rows together, scored out of fold)."""
        X, Y = self.X, self.Y
        if crossfit:
            fit = ("train", "valid", "calibration")
            every = (pd.concat([X[k] for k in fit]), np.concatenate([Y[k] for k in fit]))
            return GradeRows(every, None, every, crossfit=True)
        return GradeRows(
            (X["train"], Y["train"]), (X["valid"], Y["valid"]), (X["calibration"], Y["calibration"])
        )

    def test_as_of(self) -> np.ndarray | None:
        return None if self.lab.as_of is None else self.lab.as_of[self.pos["test"]]

    def test_leads(self) -> LocalTestLeads:
        """The test leads, in memory."""
        leads = self.lab.leads.iloc[self.pos["test"]]
        return LocalTestLeads(self.spec, self.X["test"], leads, self.lab.events, self.test_as_of())


def training_rows(data_path: Path, config: TrainConfig, steps: Stages) -> TrainingRows:
    """Read and check the input, label, split, and build the features of every row: the
    steps before boosting, with every check and reject of the in-memory engine."""
    steps.next("reading data")
    data = load_for_training(data_path, config)
    data.check_reject_share(config.input.max_reject_share)
    steps.next("labelling cut-offs")
    lab = labels.label(data, config)
    labels.require_both_outcomes(lab.y, str(data_path))
    parts = split(lab, config)
    method = str(parts.pop("method")[0])
    spec_data = replace(data, leads=lab.leads.iloc[parts["train"]], events=None)
    steps.next("building features")
    spec = features.fit_spec(spec_data, config)
    feats = features.build_features(
        lab.leads, lab.events, spec, as_of=lab.as_of, source=Path(data.source["paths"][0]).name
    )
    data.rejects.extend(feats.rejects)
    tables = data.check_reject_share(config.input.max_reject_share)
    usable = lab.leads.index.isin(feats.X.index)
    pos = {k: v[usable[v]] for k, v in parts.items()}
    Xall = feats.X.reindex(lab.leads.index)
    X = {k: Xall.iloc[v] for k, v in pos.items()}
    Y = {k: lab.y[v] for k, v in pos.items()}
    for name, rows in X.items():
        if len(np.unique(Y[name])) < 2:
            raise errors.ContractError(
                f"the {name} slice ({len(rows)} leads) has only one outcome; more data or a different split is needed"
            )
    warnings = evaluate.leak_warnings(X["train"], Y["train"], spec.labels, config.leakage_auc)
    for col, why in spec.skipped.items():
        log.info("column %r not used: %s", col, why)
    return TrainingRows(data, lab, method, spec, pos, X, Y, tables, warnings)


class LocalEngine:
    """The in-memory engine (see the module docstring)."""

    def prepare(
        self, data_path: Path, config: TrainConfig, steps: Stages, progress: bool
    ) -> tuple[Prepared, LocalTestLeads]:
        """Everything up to the raw scores of the calibration and test slices."""
        rows = training_rows(data_path, config, steps)
        X, Y, spec, sc = rows.X, rows.Y, rows.spec, config.split
        steps.next("boosting")
        crossfit = rows.crossfit(config)
        if crossfit:
            X_fit, y_cal = rows.fit_rows()
            booster, raw_cal = fit_crossfit(
                X_fit, y_cal, spec, config.model, sc.crossfit_folds, sc.seed, progress
            )
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
        prep = rows.prepared(booster, crossfit, raw_cal, y_cal, config.model.baseline_max_rows)
        return prep, rows.test_leads()

    def score_file(
        self,
        data_path: Path,
        out: Path,
        settings: Settings,
        model_uri: str | None,
        options: dataset.ReadOptions,
        as_of: pd.Timestamp | None,
        keep: Keep | None = None,
        keep_reasons: bool = False,
    ) -> score_io.ScoreSummary:
        """`score.score_file` in memory: every row scored into `out` or rejected next to it."""
        scorer, uri = score_io.load_model(settings, model_uri)
        spec = scorer.spec
        score_io.check_kind(data_path, scorer)
        rpath = score_io.rejects_path_for(out)
        data, source = score_io.read_for_scoring(data_path, scorer, options)
        score_io.check_share(data, options, rpath)
        if spec.kind == "crm" and as_of is None:
            as_of = labels.scoring_cutoff(labels.activity_stamps(data, outcomes=False))
        frame, feats = scorer.score_leads(data.leads, data.events, as_of=as_of, source=source)
        data.rejects.extend(feats.rejects)
        tables = score_io.check_share(data, options, rpath)
        result = score_io.output_frame(frame, spec.id_column)
        rows_in, rejected = tables["leads"].read, tables["leads"].rejected_rows
        if len(result) + rejected != rows_in or len(result) > len(data.leads):
            raise RuntimeError(
                f"bookkeeping error: {rows_in} rows in, {len(result)} scored, {rejected} rejected"
            )
        write_frame(result, out)
        write_frame(data.rejects.frame, rpath)
        if keep is not None:  # after the files: a store problem never costs the scores
            keep(score_io.scored(scorer, frame, feats.X, settings.model_name, keep_reasons, as_of))
        return score_io.ScoreSummary(
            out_path=out,
            rejects_path=rpath,
            rows_in=rows_in,
            scored=len(result),
            rejected=rejected,
            bands=result["band"].value_counts().to_dict(),
            as_of=str(as_of) if as_of is not None else None,
            model=uri,
            tables=tables,
            notes=data.notes,
        )


def _baseline_rows(
    X: dict[str, pd.DataFrame], Y: dict[str, np.ndarray], max_rows: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """The train and valid rows the logistic baseline learns from, sampled down to `max_rows`."""
    Xb = pd.concat([X["train"], X["valid"]])
    Yb = np.concatenate([Y["train"], Y["valid"]])
    if len(Yb) > max_rows:
        keep = np.random.default_rng(0).choice(len(Yb), max_rows, replace=False)
        Xb, Yb = Xb.iloc[keep], Yb[keep]
    return Xb, Yb
