"""The Dask engine: training and batch scoring for CRM data that outgrows one machine.

The steps are the in-memory engine's, run per partition on a Dask cluster:

1. Each piece of the leads and events tables (a file, or one row group of a Parquet file)
   is read and checked on a worker by `dataset.check_leads` / `check_events`; bad rows go
   to the rejects with their file and row, as in memory.
2. Leads and events are shuffled (Dask's own shuffle, which spills to disk) into the same
   number of partitions by a hash of the lead id, so partition i of the events holds
   exactly the events of the leads in partition i of the leads.
3. Per pair of partitions, `labels.label_rows` and `features.build_features`, the one feature
   function, run unchanged: same cut-offs, same as-of rules, same features.
4. Training boosts with LightGBM's Dask estimator; calibration, bands, baseline and the
   evaluation run on the client from the raw scores (`train.finish`, shared by both
   engines). Scoring writes one Parquet file per partition, or one CSV.

Flat exports are one row per lead with no event log; they stay on the in-memory engine.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadml import dataset, features, files, labels, progress, readers
from leadml.config import Settings, TrainConfig
from leadml.engine import Prepared
from leadml.errors import EngineError
from leadml.local_engine import input_example, read_options
from leadml.model import LeadScorer, best_rounds, booster_params, categorical_positions, lgb_names
from leadml.promote import leak_warnings
from leadml.score import ScoreSummary

BUCKET = "_bucket"
_PIECE, _ROW = "_piece", "_row"  # where a lead row came from, to reject repeated ids
EVENTS_PER_PARTITION = 1_500_000  # a partition's features take ~100 bytes per event
SAMPLE_ROWS = 200_000  # rows brought to the client for the leakage guard and best rounds
CONNECT_TIMEOUT = "10s"
_LEAD_FIELDS = ["lead_id", "created_at", "converted", "converted_at", *dataset.PROFILE_COLUMNS]


def _bucket_of(ids: pd.Series) -> np.ndarray:
    """A hash of each lead id (text, as every reader gives them); the shuffle sends equal
    hashes to the same partition."""
    values = ids.astype(object).to_numpy(object)
    return (pd.util.hash_array(values) & 0xFFFFFFFF).astype(np.uint32)


@dataclass
class _PieceReport:
    """What checking one piece found besides its good rows: rejects (with ids as read), rows
    read, and notes on how it was read."""

    rejects: dataset.Rejects
    rows: int
    notes: list[str]


def _leads_piece(
    piece: dataset.Piece, number: int, options: dataset.ReadOptions, dates: dataset.DateOrders,
    require_outcome: bool,
) -> tuple[pd.DataFrame, _PieceReport]:  # fmt: skip
    """One piece of the leads table, checked: (good rows with their bucket, piece number and
    row in the file, what was found)."""
    rejects = dataset.Rejects()
    raw = dataset.read_piece(piece, options.sep)
    leads = dataset.check_leads(raw, piece, rejects, options, dates, require_outcome)
    rows = leads.index.to_numpy()
    leads = leads[[c for c in _LEAD_FIELDS if c in leads]].reset_index(drop=True)
    for col in dataset.PROFILE_COLUMNS:  # the same columns and types in every piece
        leads[col] = leads[col].astype(object).where(leads[col].notna(), None)
    leads = leads.assign(**{BUCKET: _bucket_of(leads["lead_id"]), _PIECE: number, _ROW: rows})
    notes = [f"{piece.name}: {n}" for n in raw.notes] + dates.notes()
    return leads, _PieceReport(rejects, raw.rows, notes)


def _events_piece(
    piece: dataset.Piece, options: dataset.ReadOptions, dates: dataset.DateOrders,
    lead_ids: pd.Index, rejected_ids: frozenset,
) -> tuple[pd.DataFrame, _PieceReport]:  # fmt: skip
    """One piece of the events table, checked against the good leads' ids."""
    rejects = dataset.Rejects()
    raw = dataset.read_piece(piece, options.sep)
    events = dataset.check_events(raw, piece, lead_ids, rejects, options, dates, rejected_ids,
                                  categorical=False)  # fmt: skip
    notes = [f"{piece.name}: {n}" for n in raw.notes] + dates.notes()
    return events.assign(**{BUCKET: _bucket_of(events["lead_id"])}), _PieceReport(
        rejects, raw.rows, notes
    )


def _without(leads: pd.DataFrame, duplicates: frozenset) -> pd.DataFrame:
    """A partition of leads without the rows (piece, row) rejected as duplicate ids."""
    if duplicates:
        keys = zip(leads[_PIECE].to_numpy(), leads[_ROW].to_numpy(), strict=True)
        leads = leads[[k not in duplicates for k in keys]]
    return leads.drop(columns=[_PIECE, _ROW])


def _first(pair: tuple) -> Any:
    return pair[0]


def _second(pair: tuple) -> Any:
    return pair[1]


def _aligned(leads: pd.DataFrame, events: pd.DataFrame, every_lead: bool = True) -> pd.DataFrame:
    """The events of one partition. When `leads` are all the partition's leads (not just the
    labelled ones), check that every event belongs to one of them: the shuffle's promise."""
    events = events.drop(columns=BUCKET)
    if every_lead and len(events) and not events["lead_id"].isin(leads["lead_id"]).all():
        raise RuntimeError(
            "leads and events partitions are not aligned (a shuffle placed an event away from its lead)"
        )
    return events


def _features_part(
    rows: pd.DataFrame, events: pd.DataFrame, spec: features.FeatureSpec, keep: list[str]
) -> pd.DataFrame:
    """Features of one partition's rows (as of each row's `_as_of`), with the columns in
    `keep` carried along."""
    rows = rows.reset_index(drop=True)
    every_lead = "_snapshot" not in rows  # labelled rows leave out leads outside the population
    feats = features.build_features(
        rows, _aligned(rows, events, every_lead), spec, as_of=rows["_as_of"].to_numpy()
    )
    X = feats.X.set_axis(lgb_names(spec), axis=1)
    return pd.concat([rows.loc[feats.X.index, keep], X], axis=1)


def _features_meta(rows: Any, spec: features.FeatureSpec, keep: list[str]) -> pd.DataFrame:
    X = pd.DataFrame({name: pd.Series(dtype=float) for name in lgb_names(spec)})
    return pd.concat([rows._meta[keep], X], axis=1)


def _scores_part(
    leads: pd.DataFrame,
    events: pd.DataFrame,
    scorer: LeadScorer,
    cut: pd.Timestamp,
    out: str,
    csv: bool,
    partition_info: dict | None = None,
) -> pd.DataFrame:
    """Score one partition's leads, write them to `out`/part-NNNNN, return how many per band."""
    leads = leads.drop(columns=BUCKET).reset_index(drop=True)
    frame, _ = scorer.score_leads(leads, _aligned(leads, events), as_of=cut)
    result = pd.DataFrame(
        {
            scorer.spec.id_column: frame[scorer.spec.id_column].to_numpy(),
            "probability": np.round(frame["probability"].to_numpy(), 6),
            "score": frame["score"].to_numpy(),
            "band": frame["band"].to_numpy(),
        }
    )
    number = partition_info["number"] if partition_info else 0
    if csv:
        result.to_csv(Path(out) / f"part-{number:05d}.csv", index=False, header=False)
    else:
        result.to_parquet(Path(out) / f"part-{number:05d}.parquet", index=False)
    counts = result["band"].value_counts()
    return pd.DataFrame({"band": counts.index.astype(str), "leads": counts.to_numpy(np.int64)})


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


@dataclass
class CrmTables:
    """Checked CRM tables on the cluster, in aligned partitions by lead."""

    leads: Any  # dask DataFrame
    events: Any
    data: dataset.LeadData  # no rows: rejects, rows read per table, source, notes

    @property
    def rejects(self) -> dataset.Rejects:
        return self.data.rejects

    def counts(self) -> dict[str, dataset.TableCount]:
        return self.data.counts()


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
            _probability_part, self.rows, self.events, scorer, align_dataframes=False,
            meta=("probability", float),
        ).compute()  # fmt: skip
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
                n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                memory_limit=memory_limit, dashboard_address=None, silence_logs=logging.ERROR,
            )  # fmt: skip
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
        """Read and check a CRM folder on the cluster; leads and events in aligned partitions.

        The same checks as in memory, a piece at a time on the workers; the client keeps the
        lead ids (to reject events of unknown leads and repeated ids) and the rejects."""
        import dask
        import dask.dataframe as dd

        options = options or dataset.ReadOptions()
        folder = Path(folder).resolve()  # workers resolve paths from their own directory
        if not folder.is_dir():
            raise dataset.ContractError(
                f"{folder}: the Dask engine reads CRM tables: pass a folder with leads and events "
                "(files or folders of Parquet parts). A flat export fits one machine: use --engine local."
            )
        leads_src = dataset.table_source(folder, "leads")
        events_src = dataset.table_source(folder, "events")
        lead_pieces = dataset.pieces(leads_src, split_row_groups=True)
        event_pieces = dataset.pieces(events_src, split_row_groups=True)
        dates = dataset.DateOrders(options.date_format)
        if dates.explicit is None:
            dataset.sample_date_orders(dates, {
                p.name: readers.read_head(p.path, options.sep) for p in (lead_pieces[0], event_pieces[0])
            })  # fmt: skip
        lead_pairs = [
            dask.delayed(_leads_piece)(p, i, options, dates, require_outcome)
            for i, p in enumerate(lead_pieces)
        ]
        leads = dd.from_delayed([dask.delayed(_first)(p) for p in lead_pairs], verify_meta=False)
        lead_reports = [dask.delayed(_second)(p) for p in lead_pairs]
        with _mixed_collections():
            leads, lead_reports = dask.persist(leads, lead_reports)
        where = leads[["lead_id", _PIECE, _ROW]].compute().reset_index(drop=True)
        (lead_reports,) = dask.compute(lead_reports)
        rejects = dataset.Rejects([p for r in lead_reports for p in r.rejects.parts])
        duplicates = self._duplicates(where, lead_pieces, rejects)
        leads = leads.map_partitions(
            _without, duplicates, meta=leads._meta.drop(columns=[_PIECE, _ROW])
        )
        ids = pd.Index(where["lead_id"]).unique()
        rejected_ids = frozenset(rejects.ids("leads") - set(ids))
        id_index = self.client.scatter(ids, broadcast=True)
        event_pairs = [
            dask.delayed(_events_piece)(p, options, dates, id_index, rejected_ids)
            for p in event_pieces
        ]
        events = dd.from_delayed([dask.delayed(_first)(p) for p in event_pairs], verify_meta=False)
        event_reports = [dask.delayed(_second)(p) for p in event_pairs]
        n = self.partitions or max(
            2 * self.workers, int(np.ceil(_rows(event_pieces) / EVENTS_PER_PARTITION))
        )
        leads = leads.shuffle(on=BUCKET, npartitions=n)
        events = events.shuffle(on=BUCKET, npartitions=n)
        with _mixed_collections():
            leads, events, event_reports = dask.persist(leads, events, event_reports)
        (event_reports,) = dask.compute(event_reports)
        rejects.extend(dataset.Rejects([p for r in event_reports for p in r.rejects.parts]))
        files = dataset.table_files(leads_src) + dataset.table_files(events_src)
        notes = list(dict.fromkeys(n for r in [*lead_reports, *event_reports] for n in r.notes))
        data = dataset.LeadData(
            "crm", pd.DataFrame(), None, "lead_id", "converted", "created_at", rejects,
            {"paths": [str(leads_src), str(events_src)], "hash": dataset.file_hash(files)},
            read={"leads": sum(r.rows for r in lead_reports),
                  "events": sum(r.rows for r in event_reports)},
            notes=notes,
        )  # fmt: skip
        return CrmTables(leads, events, data)

    @staticmethod
    def _duplicates(
        where: pd.DataFrame, pieces: list[dataset.Piece], rejects: dataset.Rejects
    ) -> frozenset:
        """Rows (piece, row) whose id an earlier row already has: rejected, as in memory."""
        dup = where["lead_id"].duplicated(keep="first").to_numpy(bool)
        for number, part in where[dup].groupby(_PIECE, sort=True):
            rejects.add("leads", pieces[int(number)].name, part[_ROW].to_numpy(),
                        part["lead_id"].to_numpy(), "lead_id", dataset.DUPLICATE_ID, "lead_id")  # fmt: skip
        return frozenset(zip(where.loc[dup, _PIECE], where.loc[dup, _ROW], strict=True))

    def features(
        self, data: Path | CrmTables, spec: features.FeatureSpec, as_of: str,
        options: dataset.ReadOptions | None = None,
    ) -> Any:  # fmt: skip
        """The features of every lead in a CRM folder (or tables already read) as of one
        cut-off, as a Dask DataFrame (lead_id, then `spec.feature_names`), built by the one
        feature function per partition."""
        import dask.dataframe as dd

        tables = data if isinstance(data, CrmTables) else self.read_crm(Path(data), options, False)
        rows = tables.leads.drop(columns=BUCKET).assign(_as_of=pd.Timestamp(as_of))
        meta = _features_meta(rows, spec, ["lead_id"])
        X = dd.map_partitions(
            _features_part, rows, tables.events, spec, ["lead_id"], align_dataframes=False,
            meta=meta,
        )  # fmt: skip
        return X.rename(columns=dict(zip(lgb_names(spec), spec.feature_names, strict=True)))

    # ---- scoring ----------------------------------------------------------------------

    def score_file(
        self, data_path: Path, out: Path, settings: Settings, model_uri: str | None,
        options: dataset.ReadOptions, as_of: pd.Timestamp | None,
    ) -> ScoreSummary:  # fmt: skip
        """`score.score_file` on the cluster: a CRM folder scored into `out`, a folder of
        Parquet parts (one per partition) or one CSV file, and rejects next to it."""
        import dask.dataframe as dd

        from leadml import score

        data_path, out = Path(data_path), Path(out).resolve()  # the workers write there
        scorer, uri = score.load_model(settings, model_uri)
        if scorer.spec.kind != "crm":
            raise dataset.ContractError(
                "the Dask engine scores CRM models (leads + events); this model was trained on a "
                "flat export: use --engine local"
            )
        tables = self.read_crm(data_path, options, require_outcome=False)
        rpath = score.rejects_path_for(out)
        counts = score.check_share(tables.data, options, rpath)
        if as_of is None:  # the data's "now", as every engine takes it
            last = [tables.leads["created_at"].max(), tables.events["occurred_at"].max()]
            as_of = labels.scoring_cutoff(dd.compute(*last))
        csv = out.suffix.lower() == ".csv"
        # parts go to a side folder and take the output's name only once all are written, so
        # a failed run never leaves a partial output that looks complete
        parts = out.with_name(out.name + ".partial")
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
        model = self.client.scatter(scorer, broadcast=True)
        by_band = dd.map_partitions(
            _scores_part, tables.leads, tables.events, model, as_of, str(parts), csv,
            align_dataframes=False, meta={"band": object, "leads": np.int64},
        ).compute()  # fmt: skip
        bands = by_band.groupby("band")["leads"].sum().astype(int).to_dict()
        scored = int(sum(bands.values()))
        leads = counts["leads"]
        if scored != leads.used:
            raise RuntimeError(
                f"bookkeeping error: {leads.read} rows in, {scored} scored, {leads.rejected_rows} rejected"
            )
        if csv:
            with files.atomic_path(out) as tmp:
                _join_csv(sorted(parts.glob("part-*.csv")), tmp, scorer.spec.id_column)
            shutil.rmtree(parts)
        else:
            _replace_folder(parts, out)
        files.write_frame(tables.rejects.frame, rpath)
        return ScoreSummary(
            out_path=out, rejects_path=rpath, rows_in=leads.read, scored=scored,
            rejected=leads.rejected_rows, bands=bands, as_of=str(as_of), model=uri,
            tables=counts, notes=tables.data.notes,
        )  # fmt: skip

    # ---- training ---------------------------------------------------------------------

    def prepare(
        self, data_path: Path, config: TrainConfig, steps: progress.Stages, progress: bool
    ) -> tuple[Prepared, DaskTestLeads]:
        """`train.fit`'s engine steps on the cluster: read, label, features, boost, raw scores."""
        import dask
        import dask.dataframe as dd

        steps.next("reading data")
        tables = self.read_crm(data_path, read_options(config), require_outcome=True)
        dataset.check_reject_share(tables.data, config.input.max_reject_share)
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
            raise dataset.ContractError(
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
                *[dask.delayed(features.crm_category_counts)(p) for p in train_rows.to_delayed()]
            )
        )
        spec = features.fit_spec(tables.data, config, counts=counts)
        steps.next("building features")
        keep = ["lead_id", "_as_of", "_snapshot", "_y"]
        X = dd.map_partitions(
            _features_part, rows, events, spec, keep, align_dataframes=False,
            meta=_features_meta(rows, spec, keep),
        ).persist()  # fmt: skip
        names = lgb_names(spec)
        stats = X.groupby("_snapshot")["_y"].agg(["count", "mean"]).compute().sort_index()
        first, last_created, n_leads = dd.compute(
            rows["created_at"].min(), rows["created_at"].max(), rows["lead_id"].nunique()
        )
        y_all = float((stats["count"] * stats["mean"]).sum() / stats["count"].sum())
        summary = labels.crm_summary(
            config, cuts, int(stats["count"].sum()), n_leads,
            int(events.map_partitions(len).sum().compute()), first, last_created, y_all,
        )  # fmt: skip
        slice_of = {"test": X["_snapshot"] == 0, "calibration": X["_snapshot"] == 1,
                    "valid": X["_snapshot"] == 2, "train": X["_snapshot"] >= 3}  # fmt: skip
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
                raise dataset.ContractError(
                    f"the {name} slice ({slices[name]} leads) has only one outcome; more data or a different split is needed"
                )
        sample = _sample(X[slice_of["train"]], SAMPLE_ROWS, slices["train"])
        warnings = leak_warnings(
            sample[names].set_axis(spec.feature_names, axis=1),
            sample["_y"].to_numpy(),
            spec,
            config,
        )

        steps.next("boosting")
        booster = self._boost(X[slice_of["train"]], X[slice_of["valid"]], spec, config, slices)
        model = self.client.scatter(booster, broadcast=True)
        cal = X[slice_of["calibration"]]
        raw_cal = cal.map_partitions(_raw, model, names, meta=("raw", float))
        test = X[slice_of["test"]]
        raw_test = test.map_partitions(_raw, model, names, meta=("raw", float))
        raw_cal, y_cal, raw_test, keys = dask.compute(
            raw_cal, cal["_y"], raw_test, test[["lead_id", "_as_of", "_y"]]
        )
        fit_rows = X[slice_of["train"] | slice_of["valid"]]
        base = _sample(fit_rows, config.model.baseline_max_rows, slices["train"] + slices["valid"])

        test_rows = rows[rows["_snapshot"] == 0]

        prep = Prepared(
            kind="crm", source=tables.data.source, target="converted", rejects=tables.rejects,
            summary=summary, split_method="time (by cut-off)", slices=slices, spec=spec,
            booster=booster, crossfit=False, raw_cal=raw_cal.to_numpy(), y_cal=y_cal.to_numpy(),
            raw_test=raw_test.to_numpy(), y_test=keys["_y"].to_numpy(),
            test_keys=keys[["lead_id", "_as_of"]].reset_index(drop=True),
            baseline_rows=(base[names].set_axis(spec.feature_names, axis=1), base["_y"].to_numpy()),
            tables=tables.counts(), notes=tables.data.notes, warnings=warnings,
        )  # fmt: skip
        return prep, DaskTestLeads(spec, test, test_rows, events, len(keys))

    def _boost(self, train_X, valid_X, spec, config: TrainConfig, slices: dict) -> Any:
        """LightGBM's Dask estimator for `max_rounds` rounds, cut back to the rounds with the
        lowest log loss on (a sample of) the validation slice."""
        import lightgbm as lgb

        cfg = config.model
        params = booster_params(spec, cfg, config.split.seed)
        params.pop("metric")
        names = lgb_names(spec)
        model = lgb.DaskLGBMClassifier(client=self.client, n_estimators=cfg.max_rounds, **params)
        model.fit(train_X[names], train_X["_y"], categorical_feature=categorical_positions(spec))
        booster = model.booster_
        valid = _sample(valid_X, SAMPLE_ROWS, slices["valid"])
        rounds = best_rounds(booster, valid[names].to_numpy(), valid["_y"].to_numpy())
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds))


@contextlib.contextmanager
def _mixed_collections() -> Iterator[None]:
    """Checked rows (a DataFrame) and their rejects (plain objects) come from the same piece
    tasks and are persisted together, so each piece is read once; Dask warns that this
    materialises the DataFrame's plan, which costs nothing here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Computing mixed collections")
        yield


def _raw(part: pd.DataFrame, booster: Any, names: list[str]) -> pd.Series:
    return pd.Series(booster.predict(part[names].to_numpy(), raw_score=True), index=part.index)


def _probability_part(rows: pd.DataFrame, events: pd.DataFrame, scorer: LeadScorer) -> pd.Series:
    rows = rows.reset_index(drop=True)
    events = _aligned(rows, events, every_lead=False)
    out, _ = scorer.score_leads(rows, events, as_of=rows["_as_of"].to_numpy())
    return pd.Series(out["probability"].to_numpy(), dtype=float)


def _sample(frame: Any, rows: int, total: int) -> pd.DataFrame:
    """Up to about `rows` rows of a Dask frame of `total` rows, brought to the client."""
    frac = min(1.0, rows / max(total, 1))
    return (frame if frac >= 1.0 else frame.sample(frac=frac, random_state=0)).compute()


def _mean(stats: pd.DataFrame, from_snapshot: int) -> float:
    s = stats[stats.index >= from_snapshot]
    return float((s["count"] * s["mean"]).sum() / s["count"].sum())


def _sum_counts(parts: tuple) -> dict[str, pd.Series]:
    out: dict[str, pd.Series] = {}
    for counts in parts:
        for name, series in counts.items():
            out[name] = series if name not in out else out[name].add(series, fill_value=0)
    return out


def _rows(pieces: list[dataset.Piece]) -> int:
    """Rows in the Parquet pieces (from their footers); CSV files count as one partition."""
    import pyarrow.parquet as pq

    total = 0
    for p in pieces:
        if p.row_group is not None:
            total += pq.ParquetFile(p.path).metadata.row_group(p.row_group).num_rows
    return total


def _replace_folder(new: Path, target: Path) -> None:
    """`new` takes the name `target`; a previous `target` is kept aside until then."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _join_csv(parts: list[Path], out: Path, id_column: str) -> None:
    """One CSV from the partitions' header-less parts, without loading them."""
    with open(out, "wb") as fh:
        fh.write(f"{id_column},probability,score,band\n".encode())
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 20)
