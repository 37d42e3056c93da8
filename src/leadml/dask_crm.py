"""Training on a Dask cluster from CRM tables (leads and events), a partition at a time.

`dask_tables` reads and checks the tables on the workers into aligned partitions by lead;
per pair of partitions, `labels.label_rows` and `features.build_features`, the one feature
function, run unchanged: same cut-offs, same as-of rules, same features as in memory. The
split is by cut-off (newest to test), the boosting `dask_boost`'s; the client receives the
counts, a sample of the training rows for the leakage guard and the raw scores of the
calibration and test slices.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadml import (
    dask_boost,
    dask_tables,
    errors,
    evaluate,
    features,
    fit_features,
    labels,
)
from leadml.boosting import lgb_names
from leadml.config import TrainConfig
from leadml.dask_boost import SAMPLE_ROWS, sample
from leadml.dask_tables import BUCKET, CrmTables, aligned
from leadml.engine import Prepared
from leadml.features import FeatureSpec
from leadml.grades_fit import GradeRows
from leadml.local_engine import input_example, read_options
from leadml.model import LeadScorer
from leadml.progress import Stages


def features_as_of(tables: CrmTables, spec: FeatureSpec, as_of: str) -> Any:
    """The features of every lead of CRM tables read on the cluster as of one cut-off, as a
    Dask DataFrame (lead_id, then `spec.feature_names`), built by the one feature function
    per partition."""
    import dask.dataframe as dd

    rows = tables.leads.drop(columns=BUCKET).assign(_as_of=pd.Timestamp(as_of))
    meta = _features_meta(rows, spec, ["lead_id"])
    X = dd.map_partitions(
        _features_part,
        rows,
        tables.events,
        spec,
        ["lead_id"],
        align_dataframes=False,
        meta=meta,
    )
    return X.rename(columns=dict(zip(lgb_names(spec), spec.feature_names, strict=True)))


def prepare(
    client: Any, partitions: int | None, data_path: Path, config: TrainConfig, steps: Stages
) -> tuple[Prepared, DaskTestLeads]:
    """`train.fit`'s engine steps for CRM tables on the cluster: read and labelled by
    partition, features by the one feature function per partition, split by cut-off,
    boosted with LightGBM's Dask estimator, raw scores of the calibration and test slices."""
    import dask
    import dask.dataframe as dd

    steps.next("reading data")
    tables = dask_tables.read_crm(
        client, data_path, read_options(config), require_outcome=True, partitions=partitions
    )
    tables.data.check_reject_share(config.input.max_reject_share)
    leads, events = tables.leads, tables.events
    steps.next("labelling cut-offs")
    lc = config.label
    if lc.as_of:
        last = pd.Timestamp(lc.as_of)
    else:
        stamps = dd.compute(
            leads["created_at"].max(), leads["converted_at"].max(), events["occurred_at"].max()
        )
        last = labels.training_cutoff(stamps, lc.horizon_days)

    def count(cuts: list) -> np.ndarray:
        parts = leads.to_delayed()
        per_part = dask.compute(
            *[dask.delayed(labels.population_counts)(p, cuts, lc.horizon_days) for p in parts]
        )
        return np.sum(per_part, axis=0)

    cuts = labels.plan_cutoffs(config, last, count)
    if len(cuts) < 4:
        raise errors.ContractError(
            f"the Dask engine splits by cut-off and needs 4 or more; only {len(cuts)} have "
            f"{labels.MIN_SNAPSHOT_ROWS}+ leads. Set label.snapshots (and snapshot_every_days), "
            "or use --engine local for data this small."
        )
    rows = leads.drop(columns=BUCKET).map_partitions(
        labels.label_rows, cuts, lc.horizon_days, align_dataframes=False
    )
    train_rows = rows[rows["_snapshot"] >= 3]
    counts = _sum_counts(
        dask.compute(
            *[dask.delayed(fit_features.crm_category_counts)(p) for p in train_rows.to_delayed()]
        )
    )
    spec = features.fit_spec(tables.data, config, counts=counts)
    steps.next("building features")
    keep = ["lead_id", "_as_of", "_snapshot", "_y"]
    X = dd.map_partitions(
        _features_part,
        rows,
        events,
        spec,
        keep,
        align_dataframes=False,
        meta=_features_meta(rows, spec, keep),
    ).persist()
    names = lgb_names(spec)
    stats = X.groupby("_snapshot")["_y"].agg(["count", "mean"]).compute().sort_index()
    first, last_created, n_leads = dd.compute(
        rows["created_at"].min(), rows["created_at"].max(), rows["lead_id"].nunique()
    )
    y_all = float((stats["count"] * stats["mean"]).sum() / stats["count"].sum())
    summary = labels.crm_summary(
        config,
        cuts,
        int(stats["count"].sum()),
        n_leads,
        int(events.map_partitions(len).sum().compute()),
        first,
        last_created,
        y_all,
    )
    slice_of = {
        "test": X["_snapshot"] == 0,
        "calibration": X["_snapshot"] == 1,
        "valid": X["_snapshot"] == 2,
        "train": X["_snapshot"] >= 3,
    }
    slices = {
        "test": int(stats.loc[0, "count"]),
        "calibration": int(stats.loc[1, "count"]),
        "valid": int(stats.loc[2, "count"]),
        "train": int(stats.loc[stats.index >= 3, "count"].sum()),
    }
    for name, mean in (
        ("test", stats.loc[0, "mean"]),
        ("calibration", stats.loc[1, "mean"]),
        ("valid", stats.loc[2, "mean"]),
        ("train", _mean(stats, 3)),
    ):
        if mean in (0.0, 1.0):
            raise errors.ContractError(
                f"the {name} slice ({slices[name]} leads) has only one outcome; more data or a different split is needed"
            )
    some = sample(X[slice_of["train"]], SAMPLE_ROWS, slices["train"])
    warnings = evaluate.leak_warnings(
        some[names].set_axis(spec.feature_names, axis=1),
        some["_y"].to_numpy(),
        spec.labels,
        config.leakage_auc,
    )

    steps.next("boosting")
    valid = sample(X[slice_of["valid"]], SAMPLE_ROWS, slices["valid"])
    booster = dask_boost.boost(client, X[slice_of["train"]], valid, spec, config)
    model = client.scatter(booster, broadcast=True)
    cal = X[slice_of["calibration"]]
    raw_cal = cal.map_partitions(_raw, model, names, meta=("raw", float))
    test = X[slice_of["test"]]
    raw_test = test.map_partitions(_raw, model, names, meta=("raw", float))
    raw_cal, y_cal, raw_test, keys = dask.compute(
        raw_cal, cal["_y"], raw_test, test[["lead_id", "_as_of", "_y"]]
    )
    fit_rows = X[slice_of["train"] | slice_of["valid"]]
    base = sample(fit_rows, config.model.baseline_max_rows, slices["train"] + slices["valid"])

    test_rows = rows[rows["_snapshot"] == 0]
    # the grades' sub-models learn on the client from samples of each slice
    train_s, valid_s, cal_s = (
        (part[names].set_axis(spec.feature_names, axis=1), part["_y"].to_numpy())
        for part in (some, valid, sample(cal, SAMPLE_ROWS, slices["calibration"]))
    )

    prep = Prepared(
        kind="crm",
        source=tables.data.source,
        target="converted",
        rejects=tables.rejects,
        summary=summary,
        split_method="time (by cut-off)",
        slices=slices,
        spec=spec,
        booster=booster,
        crossfit=False,
        raw_cal=raw_cal.to_numpy(),
        y_cal=y_cal.to_numpy(),
        raw_test=raw_test.to_numpy(),
        y_test=keys["_y"].to_numpy(),
        test_keys=keys[["lead_id", "_as_of"]].reset_index(drop=True),
        baseline_rows=(base[names].set_axis(spec.feature_names, axis=1), base["_y"].to_numpy()),
        grade_rows=GradeRows(train_s, valid_s, cal_s),
        tables=tables.counts(),
        notes=tables.data.notes,
        warnings=warnings,
    )
    return prep, DaskTestLeads(spec, test, test_rows, events, len(keys))


class DaskTestLeads:
    """The test leads of a training on the cluster: their features (`X`, LightGBM's column
    names) and their raw rows with the events of their partitions."""

    def __init__(self, spec: FeatureSpec, X: Any, rows: Any, events: Any, n: int):
        self.spec, self.X, self.rows, self.events, self.n = spec, X, rows, events, n

    def predict_test(self, fn: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
        names, spec = lgb_names(self.spec), self.spec

        def apply(part: pd.DataFrame) -> pd.Series:
            return pd.Series(fn(part[names].set_axis(spec.feature_names, axis=1)), dtype=float)

        return self.X.map_partitions(apply, meta=(None, float)).compute().to_numpy()

    def features(self) -> pd.DataFrame:
        names = lgb_names(self.spec)
        return self.X[names].compute().set_axis(self.spec.feature_names, axis=1)

    def score_test(self, scorer: LeadScorer) -> np.ndarray | None:
        import dask.dataframe as dd

        out = dd.map_partitions(
            _probability_part,
            self.rows,
            self.events,
            scorer,
            align_dataframes=False,
            meta=("probability", float),
        ).compute()
        return out.to_numpy() if len(out) == self.n else None

    def example(self, k: int) -> pd.DataFrame:
        head = self.rows.head(k, npartitions=-1)
        ev = self.events[self.events["lead_id"].isin(head["lead_id"].tolist())].compute()
        return input_example(self.spec, head, ev.drop(columns=BUCKET), head["_as_of"].to_numpy())


def _features_part(
    rows: pd.DataFrame, events: pd.DataFrame, spec: FeatureSpec, keep: list[str]
) -> pd.DataFrame:
    """Features of one partition's rows (as of each row's `_as_of`), with the columns in
    `keep` carried along."""
    rows = rows.reset_index(drop=True)
    every_lead = "_snapshot" not in rows  # labelled rows leave out leads outside the population
    feats = features.build_features(
        rows, aligned(rows, events, every_lead), spec, as_of=rows["_as_of"].to_numpy()
    )
    X = feats.X.set_axis(lgb_names(spec), axis=1)
    return pd.concat([rows.loc[feats.X.index, keep], X], axis=1)


def _features_meta(rows: Any, spec: FeatureSpec, keep: list[str]) -> pd.DataFrame:
    X = pd.DataFrame({name: pd.Series(dtype=float) for name in lgb_names(spec)})
    return pd.concat([rows._meta[keep], X], axis=1)


def _raw(part: pd.DataFrame, booster: Any, names: list[str]) -> pd.Series:
    return pd.Series(booster.predict(part[names].to_numpy(), raw_score=True), index=part.index)


def _probability_part(rows: pd.DataFrame, events: pd.DataFrame, scorer: LeadScorer) -> pd.Series:
    rows = rows.reset_index(drop=True)
    events = aligned(rows, events, every_lead=False)
    out, _ = scorer.score_leads(rows, events, as_of=rows["_as_of"].to_numpy())
    return pd.Series(out["probability"].to_numpy(), dtype=float)


def _mean(stats: pd.DataFrame, from_snapshot: int) -> float:
    s = stats[stats.index >= from_snapshot]
    return float((s["count"] * s["mean"]).sum() / s["count"].sum())


def _sum_counts(parts: tuple) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    for counts in parts:
        for name, series in counts.items():
            out[name] = series if name not in out else out[name].add(series, fill_value=0)
    return out
