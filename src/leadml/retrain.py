"""`retrain(data_path, config, settings) -> Retraining`: guarded retraining that says why.

Fit first, with nothing sent to MLflow. The time-aware split's test slice is the most recent
matured period (the newest cut-off whose horizon has passed; for a flat export, its newest
rows), so the readiness gate (`monitor.readiness`, thresholds in `config.monitor`) counts
its leads and conversions: too little, and nothing is registered. Enough, and the
challenger is registered as `leadml train` does (`train.log_version`) and judged against the
champion on those same leads with the guard (`promote.promote_if_better` with a tolerance:
same input contract, no leakage finding, AUC not worse beyond the tolerance with its
interval). The decision and its numbers go to `<home>/retrain/<UTC time>.json` and
`latest.json`, and the sentence to the challenger's registry tag `leadml.retrain`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pandas as pd

from leadml import files, monitor, promote
from leadml.config import Settings, TrainConfig
from leadml.split import STRATIFIED
from leadml.train import Artefacts, TrainResult, fit_keeping_rejects, log_version

Decision = Literal["promoted", "kept", "not ready"]
EXIT_CODES: dict[Decision, int] = {"promoted": 0, "kept": 1, "not ready": 3}


@dataclass(frozen=True)
class Retraining:
    """What one retraining decided, on which numbers, and the sentence that says why."""

    decision: Decision
    sentence: str
    readiness: monitor.Readiness
    period: str  # the matured period judged on, in words
    tolerance: float
    challenger: str | None = None  # registered version; None when nothing was registered
    champion: str | None = None  # the champion compared with (None: there was none)
    comparison: promote.AucComparison | None = None  # the guard's numbers, when it decided
    dry_run: bool = False
    report_path: Path | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.decision]

    def as_dict(self) -> dict:
        c = self.comparison
        return {
            "decision": self.decision,
            "sentence": self.sentence,
            "dry_run": self.dry_run,
            "period": self.period,
            "readiness": {
                "ready": self.readiness.ready,
                "leads": self.readiness.leads,
                "conversions": self.readiness.conversions,
                "reason": self.readiness.reason,
            },
            "challenger": {"version": self.challenger, "roc_auc": c.challenger_auc if c else None},
            "champion": {"version": self.champion, "roc_auc": c.champion_auc if c else None},
            "difference": None
            if c is None
            else {"roc_auc": c.difference, "interval_90": [c.low, c.high], "leads": c.leads},
            "tolerance": self.tolerance,
        }


def retrain(
    data_path: Path | str,
    config: TrainConfig,
    settings: Settings,
    tolerance: float | None = None,
    dry_run: bool = False,
    progress: bool = False,
) -> Retraining:
    """Retrain when there is enough matured data, promote only what passes the guard, and
    write why (`tolerance`: default `config.monitor.auc_tolerance`). `dry_run`: fit, check
    readiness and compare with the champion, but register, promote and write nothing."""
    tolerance = config.monitor.auc_tolerance if tolerance is None else tolerance
    result, art = fit_keeping_rejects(Path(data_path), config, settings, progress)
    ready = monitor.readiness(len(art.y_test), int(art.y_test.sum()), config.monitor)
    period = _period(result)
    gate = Retraining(
        "not ready", f"not retrained: {ready.reason} ({period})", ready, period, tolerance
    )
    if not ready.ready:
        done = gate
    elif dry_run:
        done = _dry_run(settings, result, art, gate)
    else:
        done = _register_and_decide(settings, config, result, art, gate)
    if dry_run:
        return replace(done, dry_run=True)
    return replace(done, report_path=_write(settings, done))


def _period(result: TrainResult) -> str:
    """The test slice in words: the newest cut-off and horizon, or the newest rows (random
    rows only for data without dates, where no period is more recent than another)."""
    d, rows = result.data_summary, f"{int(result.metrics['leads']):,}"
    if d.get("cutoffs"):
        return f"cut-off {d['cutoffs'][0]}, {d['horizon_days']}-day horizon"
    if d["split"] == STRATIFIED:
        return f"{rows} rows drawn at random (the data has no dates)"
    return f"the newest {rows} rows"


def _register_and_decide(
    settings: Settings, config: TrainConfig, result: TrainResult, art: Artefacts, gate: Retraining
) -> Retraining:
    """Register the challenger in its own MLflow run, decide with the guard, tag why
    (`gate`: the readiness that let it through, filled in with the decision)."""
    from leadml import tracking

    with tracking.training_run(settings):
        log_version(settings, config, result, art)
        assert result.version is not None
        decided = promote.promote_if_better(
            settings,
            result.version,
            result.metrics[config.promote_metric],
            art.test,
            art.y_test,
            config.promote_metric,
            guard_tolerance=gate.tolerance,
            p_test=art.p_test,
        )
    result.promoted, result.promotion_note = decided.promoted, decided.note
    result.export_path = decided.export_path
    v = result.version
    if decided.promoted:
        decision: Decision = "promoted"
        was = f", replacing v{decided.champion}" if decided.champion else ""
        sentence = f"v{v} promoted to champion{was}: {decided.note}"
    else:
        decision = "kept"
        stays = f"champion v{decided.champion} stays" if decided.champion else "no champion"
        sentence = f"v{v} kept as challenger, {stays}: {decided.note}"
    sentence += f" ({gate.period})"
    tracking.set_version_tag(settings, v, tracking.RETRAIN_TAG, sentence)
    return replace(
        gate,
        decision=decision,
        sentence=sentence,
        challenger=v,
        champion=decided.champion,
        comparison=decided.comparison,
    )


def _dry_run(
    settings: Settings, result: TrainResult, art: Artefacts, gate: Retraining
) -> Retraining:
    """What the guard would say about this fit against the champion, nothing registered.
    The leakage finding is checked from the fit's warnings; the input contract is checked
    only when a version is registered, so the sentence says so."""
    from leadml import tracking

    current = (
        tracking.alias_version(settings, tracking.CHAMPION) if settings.store_exists() else None
    )
    leak = promote.version_tags(result.warnings).get(tracking.LEAKAGE_TAG)
    if leak:
        return replace(gate, decision="kept", sentence=f"would be kept: leakage ({leak})")
    if current is None:
        return replace(gate, decision="promoted", sentence="would be promoted: no champion yet")
    theirs = promote.champion_probabilities(settings, current, art.test)
    if theirs is None:
        why = f"would be kept: champion v{current} cannot score this data"
        return replace(gate, decision="kept", sentence=why, champion=current)
    found = promote.compare_auc(art.y_test, art.p_test, theirs, gate.tolerance)
    decision: Decision = "promoted" if found.passes else "kept"
    sentence = (
        f"would be {decision} against champion v{current}: {found.note} ({gate.period}; "
        "the input contract is checked when registering)"
    )
    return replace(gate, decision=decision, sentence=sentence, champion=current, comparison=found)


def _write(settings: Settings, done: Retraining) -> Path:
    """`<home>/retrain/<UTC time>.json` and `latest.json` (same content), each atomically."""
    now = pd.Timestamp.now(tz="UTC")
    body = {"at": now.isoformat(timespec="seconds"), "model": settings.model_name} | done.as_dict()
    text = json.dumps(body, indent=2) + "\n"
    folder = settings.home / "retrain"
    path = files.write_text(folder / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}.json", text)
    files.write_text(folder / "latest.json", text)
    return path
