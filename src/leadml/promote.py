"""Promotion: champion or not for a registered version, and the tags that say why not.

A version becomes champion automatically only when nothing forbids it (no leakage finding,
the champion's input contract) and it is at least as good as the champion on the same test
leads; otherwise it stays challenger and the note says why. `leadml retrain` asks for the
guard instead of the strict rule: not worse than the champion beyond a tolerance in AUC,
judged with the bootstrap interval of the difference (`compare_auc`).
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


def champion_probabilities(settings: Settings, version: str, test: TestLeads) -> np.ndarray | None:
    """The current champion's probabilities on the new test leads, or None when it cannot
    score them."""
    from leadml import tracking

    try:
        champ = tracking.load_scorer(settings, f"models:/{settings.model_name}/{version}")
        return test.score_test(champ)
    except (KeyError, LeadmlError) as exc:  # a champion of another kind, a model gone
        log.warning(
            "champion v%s cannot score the new test leads (%s)", version, type(exc).__name__
        )
        return None


def champion_metric(
    settings: Settings, version: str, test: TestLeads, y_test: np.ndarray, metric: str
) -> float | None:
    """The current champion's metric on the new test leads, or None when it cannot score them."""
    p = champion_probabilities(settings, version, test)
    return None if p is None else evaluate.metrics(y_test, p)[metric]


@dataclass(frozen=True)
class AucComparison:
    """The retrain guard's numbers on one set of leads: both AUCs, the difference
    (challenger - champion) with its paired bootstrap 90 % interval, the tolerance, and
    whether the challenger passes, with the sentence that says why."""

    challenger_auc: float
    champion_auc: float
    difference: float
    low: float
    high: float
    tolerance: float
    leads: int
    passes: bool
    note: str


@dataclass(frozen=True)
class Promotion:
    """Champion or not, and why in one line; where the champion export is when it is."""

    promoted: bool
    note: str
    export_path: Path | None = None
    champion: str | None = None  # the champion it was compared with, if any
    comparison: AucComparison | None = None  # the guard's numbers, when it decided


def promote_if_better(
    settings: Settings,
    version: str,
    mine: float,
    test: TestLeads,
    y_test: np.ndarray,
    metric: str,
    *,
    guard_tolerance: float | None = None,
    p_test: np.ndarray | None = None,
) -> Promotion:
    """Make the new version champion when it may be (no leakage finding, the champion's input
    contract) and is good enough against the champion on the same test leads.

    Good enough is "at least as good" by `metric`; with `guard_tolerance` (and the new
    version's probabilities `p_test`) and metric roc_auc, it is the retrain guard instead
    (`compare_auc`: not worse beyond the tolerance, chance taken into account). Decided and
    done under the champion lock, so two trainings finishing together compare against the
    champion that is really there."""
    from leadml import champion, tracking

    guarded = guard_tolerance is not None and metric == "roc_auc"
    if guarded and p_test is None:
        raise ValueError("promote_if_better: the guard needs the new version's p_test")
    with champion.locked(settings):
        tracking.reconcile(settings)
        current = tracking.alias_version(settings, tracking.CHAMPION)
        why = tracking.refusal(settings, version)
        if why:
            return Promotion(False, why, champion=current)
        if current is None:
            return Promotion(
                True, "no champion yet", tracking.promote(settings, version, force=True)
            )
        theirs = champion_probabilities(settings, current, test)
        if theirs is None:
            return Promotion(
                False,
                f"champion v{current} cannot score this data; promote by hand with "
                f"`leadml promote --version {version}`",
                champion=current,
            )
        passes, note, comparison = _judge(
            y_test, mine, theirs, metric, current, guard_tolerance if guarded else None, p_test
        )
        if not passes:
            return Promotion(False, note, champion=current, comparison=comparison)
        path = tracking.promote(settings, version, force=True)
        return Promotion(True, note, path, champion=current, comparison=comparison)


def _judge(
    y_test: np.ndarray,
    mine: float,
    theirs: np.ndarray,
    metric: str,
    current: str,
    tolerance: float | None,
    p_test: np.ndarray | None,
) -> tuple[bool, str, AucComparison | None]:
    """Good enough against champion `current`'s probabilities `theirs`: the retrain guard
    when a tolerance is given (its note names no version: the caller's sentence does), else
    at least as good by `metric`."""
    if tolerance is not None and p_test is not None:
        found = compare_auc(y_test, p_test, theirs, tolerance)
        return found.passes, found.note, found
    their = evaluate.metrics(y_test, theirs)[metric]
    note = f"{metric} {mine:.4f} vs champion v{current} {their:.4f} on the same test leads"
    return (mine >= their if metric == "roc_auc" else mine <= their), note, None


def compare_auc(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    tolerance: float,
    rounds: int = 200,
    seed: int = 0,
) -> AucComparison:
    """The retrain rule, in one place: the challenger passes when it is not worse than the
    champion beyond `tolerance` in AUC on the same leads, taking chance into account: the
    lower end of the paired bootstrap 90 % interval of (challenger - champion) must be at
    least -tolerance."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    mine, theirs = float(roc_auc_score(y, challenger)), float(roc_auc_score(y, champion))
    diff = mine - theirs
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
    return AucComparison(mine, theirs, diff, low, high, tolerance, len(y), passes, note)


def auc_guard(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    tolerance: float,
    rounds: int = 200,
    seed: int = 0,
) -> tuple[bool, str]:
    """`compare_auc` as (passes, the sentence that says why)."""
    found = compare_auc(y, challenger, champion, tolerance, rounds, seed)
    return found.passes, found.note
