"""The Dask engine: training and batch scoring for data that outgrows one machine.

The steps are the in-memory engine's, run per partition on a Dask cluster:

1. `dask_tables` reads and checks CRM tables piece by piece on the workers and shuffles
   leads and events into aligned partitions by lead.
2. Per pair of partitions, `labels.label_rows` and `features.build_features`, the one feature
   function, run unchanged: same cut-offs, same as-of rules, same features.
3. Training boosts with LightGBM's Dask estimator (`dask_boost`); calibration, bands,
   baseline and the evaluation run on the client from the raw scores (`train.finish`,
   shared by both engines).
4. `dask_scoring` scores CRM folders and flat exports, one output part per partition.

A flat export (one file, one row per lead) trains on the cluster too (`dask_flat`): it is
read, checked, split and turned into features on the client by the in-memory engine's own
steps, so it must fit in the client's memory; only its boosting runs on the workers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadml import (
    accounting,
    dask_boost,
    dask_flat,
    dask_scoring,
    dask_tables,
    dataset,
    errors,
    features,
    fit_features,
    labels,
    progress,
)
from leadml.config import Settings, TrainConfig
from leadml.dask_boost import SAMPLE_ROWS, sample
from leadml.dask_tables import BUCKET, CrmTables, aligned
from leadml.engine import Prepared, TestLeads
from leadml.errors import EngineError
from leadml.local_engine import input_example, read_options
from leadml.model import LeadScorer, lgb_names
from leadml.promote import leak_warnings
from leadml.score import ScoreSummary

CONNECT_TIMEOUT = "10s"


def _features_part(
    rows: pd.DataFrame, events: pd.DataFrame, spec: features.FeatureSpec, keep: list[str]
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


def _features_meta(rows: Any, spec: features.FeatureSpec, keep: list[str]) -> pd.DataFrame:
    X = pd.DataFrame({name: pd.Series(dtype=float) for name in lgb_names(spec)})
    return pd.concat([rows._meta[keep], X], axis=1)


def _quiet_lightgbm() -> None:
    """LightGBM's Dask estimator logs progress through its Python logger; keep its warnings,
    but not the one that Dask, not LightGBM, sets the threads per worker (by design here)."""
    import lightgbm as lgb

    logger = logging.getLogger("leadml.lightgbm")
    logger.setLevel(logging.WARNING)
    if not logger.filters:
        logger.addFilter(lambda record: "will be ignored" not in record.getMessage())
    lgb.register_logger(logger)


def _mute_stdout() -> None:
    """On a local cluster's workers: LightGBM's network set-up prints every port it binds to
    the process's stdout, from a thread where its log callback (thread-local) is not set, so
    no logger or verbosity can stop it. Worker logs go to stderr and stay."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def _versions() -> dict[str, str]:
    return {p: importlib.metadata.version(p) for p in ("leadml", "lightgbm", "pandas", "dask")}


class DaskTestLeads:
    """The test leads of a training on the cluster: their features (`X`, LightGBM's column
    names) and their raw rows with the events of their partitions."""

    def __init__(self, spec: features.FeatureSpec, X: Any, rows: Any, events: Any, n: int):
        self.spec, self.X, self.rows, self.events, self.n = spec, X, rows, events, n

    def predict_test(self, fn: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
        names, spec = lgb_names(self.spec), self.spec

        def apply(part: pd.DataFrame) -> pd.Series:
            return pd.Series(fn(part[names].set_axis(spec.feature_names, axis=1)), dtype=float)

        return self.X.map_partitions(apply, meta=(None, float)).compute().to_numpy()

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


class DaskEngine:
    """A Dask client with the steps `train.fit` and `score.score_file` delegate to it."""

    def __init__(self, client: Any, partitions: int | None = None):
        self.client = client
        self.partitions = partitions

    @classmethod
    @contextlib.contextmanager
    def connect(
        cls, scheduler: str | None = None, workers: int | None = None, memory_limit: str = "auto"
    ) -> Iterator[DaskEngine]:
        """A client to the scheduler at `scheduler`, or to a local cluster of `workers`
        processes (default: one per core) with one thread each, closed afterwards."""
        from distributed import Client, LocalCluster

        if scheduler:
            try:
                client = Client(scheduler, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise EngineError(
                    f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT} "
                    f"({type(exc).__name__}). Check the address (tcp://HOST:8786) and that the "
                    "scheduler runs, or leave --scheduler out to start a local cluster."
                ) from None
            cluster = None
        else:
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                memory_limit=memory_limit,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
            client.run(_mute_stdout)
        try:
            engine = cls(client)
            engine.check_workers()
            yield engine
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def check_workers(self) -> None:
        """The workers must run the same leadml (and LightGBM, pandas, Dask) as this process."""
        try:
            seen = self.client.run(_versions)
        except Exception as exc:  # a worker without leadml fails to unpickle _versions
            raise EngineError(
                f"the Dask workers cannot run leadml ({type(exc).__name__}: {exc}). Install this "
                "leadml version on every worker (pip install leadml==...)."
            ) from None
        if not seen:
            raise EngineError(
                "the Dask cluster has no workers; start some with `dask worker ADDRESS`"
            )
        _quiet_lightgbm()
        mine = _versions()
        for worker, theirs in seen.items():
            if theirs != mine:
                diff = ", ".join(
                    f"{k} {theirs[k]} (here {v})" for k, v in mine.items() if theirs[k] != v
                )
                raise EngineError(
                    f"Dask worker {worker} runs {diff}; install the same versions everywhere."
                )

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info()["workers"])

    # ---- reading ----------------------------------------------------------------------

    def read_crm(
        self, folder: Path, options: dataset.ReadOptions | None, require_outcome: bool
    ) -> CrmTables:
        """Read and check a CRM folder on the cluster (`dask_tables.read_crm`)."""
        return dask_tables.read_crm(
            self.client, folder, options, require_outcome, partitions=self.partitions
        )

    def features(
        self,
        data: Path | CrmTables,
        spec: features.FeatureSpec,
        as_of: str,
        options: dataset.ReadOptions | None = None,
    ) -> Any:
        """The features of every lead in a CRM folder (or tables already read) as of one
        cut-off, as a Dask DataFrame (lead_id, then `spec.feature_names`), built by the one
        feature function per partition."""
        import dask.dataframe as dd

        tables = data if isinstance(data, CrmTables) else self.read_crm(Path(data), options, False)
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

    # ---- scoring ----------------------------------------------------------------------

    def score_file(
        self,
        data_path: Path,
        out: Path,
        settings: Settings,
        model_uri: str | None,
        options: dataset.ReadOptions,
        as_of: pd.Timestamp | None,
    ) -> ScoreSummary:
        """`score.score_file` on the cluster, for CRM folders and flat exports
        (`dask_scoring.score_file`)."""
        return dask_scoring.score_file(
            self.client, self.partitions, data_path, out, settings, model_uri, options, as_of
        )

    # ---- training ---------------------------------------------------------------------

    def prepare(
        self, data_path: Path, config: TrainConfig, steps: progress.Stages, progress: bool
    ) -> tuple[Prepared, TestLeads]:
        """`train.fit`'s engine steps on the cluster: read, label, features, boost, raw
        scores; a flat export (a file, not a folder) by `dask_flat.prepare`."""
        if not dataset.require_input(data_path).is_dir():
            return dask_flat.prepare(self.client, self.partitions, data_path, config, steps)
        return self._prepare_crm(data_path, config, steps)

    def _prepare_crm(
        self, data_path: Path, config: TrainConfig, steps: progress.Stages
    ) -> tuple[Prepared, DaskTestLeads]:
        """CRM tables: read and labelled by partition, split by cut-off."""
        import dask
        import dask.dataframe as dd

        steps.next("reading data")
        tables = self.read_crm(data_path, read_options(config), require_outcome=True)
        accounting.check_reject_share(tables.data, config.input.max_reject_share)
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
                *[
                    dask.delayed(fit_features.crm_category_counts)(p)
                    for p in train_rows.to_delayed()
                ]
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
        warnings = leak_warnings(
            some[names].set_axis(spec.feature_names, axis=1),
            some["_y"].to_numpy(),
            spec,
            config,
        )

        steps.next("boosting")
        valid = sample(X[slice_of["valid"]], SAMPLE_ROWS, slices["valid"])
        booster = dask_boost.boost(self.client, X[slice_of["train"]], valid, spec, config)
        model = self.client.scatter(booster, broadcast=True)
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
            tables=tables.counts(),
            notes=tables.data.notes,
            warnings=warnings,
        )
        return prep, DaskTestLeads(spec, test, test_rows, events, len(keys))


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
