"""The Dask engine: training and batch scoring for data that outgrows one machine.

`DaskEngine` connects to a cluster (or starts a local one), checks that the workers run the
same versions as this process, and hands each job to its module:

- `dask_crm` trains on CRM tables: `dask_tables` reads and checks them piece by piece on the
  workers into aligned partitions by lead, and per pair of partitions `labels.label_rows`
  and `features.build_features`, the one feature function, run unchanged.
- `dask_flat` trains on a flat export (one file, one row per lead): it is read, checked,
  split and turned into features on the client by the in-memory engine's own steps (so it
  must fit in the client's memory); only its boosting runs on the workers.
- Both boost with LightGBM's Dask estimator (`dask_boost`); calibration, bands, baseline and
  the evaluation run on the client from the raw scores (`train.finish`, shared by both
  engines).
- `dask_scoring` scores CRM folders and flat exports, one output part per partition.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from leadml import dask_crm, dask_flat, dask_scoring, dask_tables, dataset, features, progress
from leadml.config import Settings, TrainConfig
from leadml.dask_tables import CrmTables
from leadml.engine import Prepared, TestLeads
from leadml.errors import EngineError
from leadml.score_io import ScoreSummary

if TYPE_CHECKING:
    from leadml.scoring import Keep

CONNECT_TIMEOUT = "10s"


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
        tables = data if isinstance(data, CrmTables) else self.read_crm(Path(data), options, False)
        return dask_crm.features_as_of(tables, spec, as_of)

    # ---- scoring ----------------------------------------------------------------------

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
    ) -> ScoreSummary:
        """`score.score_file` on the cluster, for CRM folders and flat exports
        (`dask_scoring.score_file`)."""
        return dask_scoring.score_file(
            self.client,
            self.partitions,
            data_path,
            out,
            settings,
            model_uri,
            options,
            as_of,
            keep,
            keep_reasons,
        )

    # ---- training ---------------------------------------------------------------------

    def prepare(
        self, data_path: Path, config: TrainConfig, steps: progress.Stages, progress: bool
    ) -> tuple[Prepared, TestLeads]:
        """`train.fit`'s engine steps on the cluster: read, label, features, boost, raw
        scores; a flat export (a file, not a folder) by `dask_flat.prepare`."""
        if not dataset.require_input(data_path).is_dir():
            return dask_flat.prepare(self.client, self.partitions, data_path, config, steps)
        return dask_crm.prepare(self.client, self.partitions, data_path, config, steps)
