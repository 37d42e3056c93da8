"""The engine seam: what an engine (in memory, `local_engine`; on a Dask cluster,
`dask_engine`) does, and the plain data it hands back.

An engine reads and checks the input, labels, splits, builds features and boosts
(`prepare`), and scores a whole input file (`score_file`). What every engine shares after
boosting (calibration, bands, baseline, evaluation, the model card) is `train.finish`, which
reaches the test leads again only through `TestLeads`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import lightgbm as lgb

    from leadml import accounting, dataset
    from leadml.config import Settings, TrainConfig
    from leadml.features import FeatureSpec
    from leadml.grades_fit import GradeRows
    from leadml.model import LeadScorer
    from leadml.progress import Stages
    from leadml.score_io import ScoreSummary
    from leadml.scoring import Keep


@dataclass(frozen=True)
class Prepared:
    """What an engine's `prepare` hands to the steps every engine shares: the spec and
    booster, the raw scores and labels of the calibration and test rows, and the counts."""

    kind: str
    source: dict
    target: str | None
    rejects: accounting.Rejects
    summary: dict
    split_method: str
    slices: dict[str, int]
    spec: FeatureSpec
    booster: lgb.Booster
    crossfit: bool
    raw_cal: np.ndarray
    y_cal: np.ndarray
    raw_test: np.ndarray
    y_test: np.ndarray
    test_keys: pd.DataFrame | None  # CRM: lead_id and _as_of of each test row
    baseline_rows: tuple[pd.DataFrame, np.ndarray] | None  # what the baseline learns from
    grade_rows: GradeRows | None  # what the grades' sub-models learn from (None: no grades)
    tables: dict[str, accounting.TableCount] = field(default_factory=dict)  # rows in/used/rejected
    notes: list[str] = field(default_factory=list)  # how the input files were read
    warnings: list[str] = field(default_factory=list)


class TestLeads(Protocol):
    """The test leads of one training, wherever they live."""

    def predict_test(self, fn: Callable[[pd.DataFrame], np.ndarray]) -> np.ndarray:
        """`fn` over the test rows' features (columns `spec.feature_names`), in test order."""
        ...

    def features(self) -> pd.DataFrame:
        """The test rows' features (columns `spec.feature_names`): the reference profile's
        population (`profile.build`)."""
        ...

    def score_test(self, scorer: LeadScorer) -> np.ndarray | None:
        """Another model's probabilities on the test leads (from their raw fields), or None
        when it cannot score every one of them."""
        ...

    def example(self, k: int) -> pd.DataFrame:
        """The first `k` raw test leads in the shape the pyfunc takes (no personal data)."""
        ...


class Engine(Protocol):
    """Training up to the raw scores, and batch scoring of a whole input."""

    def prepare(
        self, data_path: Path, config: TrainConfig, steps: Stages, progress: bool
    ) -> tuple[Prepared, TestLeads]: ...

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
        """Score `data_path` into `out` (rejects next to it); `keep`, when given, is handed
        what was scored (`scoring.Scored`, with the score's reasons when `keep_reasons`) for
        the score store, once the files are written."""
        ...
