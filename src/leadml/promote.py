"""Promotion: the leakage guard's findings, and champion or not for a registered version.

A version becomes champion automatically only when nothing forbids it (no leakage finding,
the champion's input contract) and it is at least as good as the champion on the same test
leads; otherwise it stays challenger and the note says why.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from leadml import evaluate
from leadml.config import Settings, TrainConfig
from leadml.errors import LeadmlError
from leadml.features import FeatureSpec

if TYPE_CHECKING:
    from leadml.engine import TestLeads
    from leadml.train import TrainResult

log = logging.getLogger(__name__)


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


def leak_warnings(
    X: pd.DataFrame, y: np.ndarray, spec: FeatureSpec, config: TrainConfig
) -> list[str]:
    """The leakage guard on training features: one `LeakFinding` per suspicious column."""
    return [
        LeakFinding(col, auc)
        for col, auc in evaluate.find_leaks(X, y, spec.labels, config.leakage_auc)
    ]


def leaks(result: TrainResult) -> list[LeakFinding]:
    """The leakage guard's findings among a training's warnings."""
    return [w for w in result.warnings if isinstance(w, LeakFinding)]


def version_tags(result: TrainResult) -> dict[str, str]:
    """Registry tags set with the version: the leakage guard's findings keep it from ever
    being promoted automatically, and tell a person who looks why."""
    found = leaks(result)
    if not found:
        return {}
    text = "; ".join(
        f"column {w.column!r} alone predicts the outcome with AUC {w.auc:.3f}" for w in found
    )
    return {"leadml.leakage": text[:1000]}


def champion_metric(
    settings: Settings, version: str, test: TestLeads, y_test: np.ndarray, metric: str
) -> float | None:
    """The current champion's metric on the new test leads, or None when it cannot score them."""
    from leadml import tracking

    try:
        champ = tracking.load_scorer(settings, f"models:/{settings.model_name}/{version}")
        p = test.score_test(champ)
        return None if p is None else evaluate.metrics(y_test, p)[metric]
    except (KeyError, LeadmlError) as exc:  # a champion of another kind, a model gone
        log.warning(
            "champion v%s cannot score the new test leads (%s)", version, type(exc).__name__
        )
        return None


def promote_if_better(
    settings: Settings, result: TrainResult, test: TestLeads, y_test: np.ndarray, metric: str
) -> None:
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
            theirs = champion_metric(settings, current, test, y_test, metric)
            if theirs is None:
                result.promotion_note = f"champion v{current} cannot score this data; promote by hand with `leadml promote --version {result.version}`"
            else:
                better = mine >= theirs if metric == "roc_auc" else mine <= theirs
                result.promoted = better
                result.promotion_note = f"{metric} {mine:.4f} vs champion v{current} {theirs:.4f} on the same test leads"
        if result.promoted:
            result.export_path = tracking.promote(settings, result.version, force=True)
