"""Promotion: champion or not for a registered version, and the tags that say why not.

A version becomes champion automatically only when nothing forbids it (no leakage finding,
the champion's input contract) and it is at least as good as the champion on the same test
leads; otherwise it stays challenger and the note says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from leadml import evaluate
from leadml.config import Settings
from leadml.errors import LeadmlError

if TYPE_CHECKING:
    from leadml.engine import TestLeads

log = logging.getLogger(__name__)


def version_tags(warnings: list[str]) -> dict[str, str]:
    """Registry tags set with the version: the leakage guard's findings among a training's
    warnings keep it from ever being promoted automatically, and tell a person who looks why."""
    found = [w for w in warnings if isinstance(w, evaluate.LeakFinding)]
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


@dataclass(frozen=True)
class Promotion:
    """Champion or not, and why in one line; where the champion export is when it is."""

    promoted: bool
    note: str
    export_path: Path | None = None


def promote_if_better(
    settings: Settings,
    version: str,
    mine: float,
    test: TestLeads,
    y_test: np.ndarray,
    metric: str,
) -> Promotion:
    """Make the new version champion when it may be (no leakage finding, the champion's input
    contract) and is at least as good as the champion on the same test leads.

    Decided and done under the champion lock, so two trainings finishing together compare
    against the champion that is really there."""
    from leadml import champion, tracking

    with champion.locked(settings):
        tracking.reconcile(settings)
        current = tracking.alias_version(settings, tracking.CHAMPION)
        why = tracking.refusal(settings, version)
        if why:
            return Promotion(False, why)
        if current is None:
            return Promotion(
                True, "no champion yet", tracking.promote(settings, version, force=True)
            )
        theirs = champion_metric(settings, current, test, y_test, metric)
        if theirs is None:
            return Promotion(
                False,
                f"champion v{current} cannot score this data; promote by hand with "
                f"`leadml promote --version {version}`",
            )
        note = f"{metric} {mine:.4f} vs champion v{current} {theirs:.4f} on the same test leads"
        if not (mine >= theirs if metric == "roc_auc" else mine <= theirs):
            return Promotion(False, note)
        return Promotion(True, note, tracking.promote(settings, version, force=True))


def auc_guard(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    tolerance: float,
    rounds: int = 200,
    seed: int = 0,
) -> tuple[bool, str]:
    """The retrain rule, in one place: the challenger passes when it is not worse than the
    champion beyond `tolerance` in AUC on the same leads, taking chance into account: the
    lower end of the paired bootstrap 90 % interval of (challenger - champion) must be at
    least -tolerance. Returns (passes, the sentence that says why)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    diff = float(roc_auc_score(y, challenger) - roc_auc_score(y, champion))
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(rounds):
        rows = rng.integers(0, len(y), len(y))
        if y[rows].min() == y[rows].max():
            continue
        boot.append(
            roc_auc_score(y[rows], challenger[rows]) - roc_auc_score(y[rows], champion[rows])
        )
    low, high = (float(q) for q in np.quantile(boot, [0.05, 0.95])) if boot else (diff, diff)
    passes = low >= -tolerance
    note = (
        f"AUC challenger - champion {diff:+.4f} (90% interval {low:+.4f} to {high:+.4f}) on "
        f"{len(y):,} leads; {'within' if passes else 'worse beyond'} the tolerance {tolerance:.3f}"
    )
    return passes, note
