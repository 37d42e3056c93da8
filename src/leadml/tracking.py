"""Everything that talks to MLflow: runs, the pyfunc model, the registry and its aliases.

No other module imports mlflow. The default store is embedded (sqlite file under
`<home>/mlruns/`), so a fresh machine needs no server. Promotion is by alias
(`challenger`, `champion`), never by the deprecated registry stages.

The alias is the truth and the export (`leadml.champion`) follows it: a promotion builds the
new export beside the old one, moves the alias, then switches the export with one rename,
all under one lock. `reconcile` repairs whatever a kill between those steps left, and every
command that reads or moves the champion calls it first.

Longer than our ~400-line rule on purpose: this is the one module that talks to MLflow
(runs, the registry, aliases, promotion's reconciliation), so that no other module imports
it and every MLflow quirk is handled in one place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import psutil
from mlflow.pyfunc import PythonModel

from leadml import champion, files
from leadml.config import DEFAULT_MODEL_NAME, Settings
from leadml.errors import ConfigError, ModelError, PromotionError
from leadml.features import FeatureSpec
from leadml.model import LeadScorer
from leadml.records import to_tables

log = logging.getLogger(__name__)
CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous"
LEAKAGE_TAG = "leadml.leakage"  # on a registry version: why it is never promoted automatically
RETRAIN_TAG = "leadml.retrain"  # on a registry version: what `leadml retrain` decided and why
HOST_TAG, PID_TAG, STARTED_TAG = "leadml.host", "leadml.pid", "leadml.process_started"


class LeadmlPyfunc(PythonModel):
    """MLflow pyfunc: raw leads in, id / probability / score / band out.

    It owns the preprocessing (the leadml feature function), so the registered model takes
    the same lead fields as training and returns calibrated probabilities, not 0/1 labels.
    CRM models read each lead's events from an `events` column holding a JSON list of
    {occurred_at, event_type, page}, and the cut-off from an optional `as_of` column (now
    when absent).
    """

    def load_context(self, context) -> None:
        self.scorer = LeadScorer.load(context.artifacts["scorer"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return score_records(self.scorer, model_input)


def score_records(scorer: LeadScorer, frame: pd.DataFrame) -> pd.DataFrame:
    """Score request-shaped rows (see `LeadmlPyfunc`): lead_id, probability, score, band and
    the grades (fit, engagement, grid, temperature, stage, pql)."""
    leads, events, as_of = to_tables(frame, scorer.spec.kind == "crm")
    out, _ = scorer.score_leads(leads, events, as_of=as_of, source="request")
    out = out.rename(columns={scorer.spec.id_column: "lead_id"})
    out["lead_id"] = out["lead_id"].astype(str)
    return out.reset_index(drop=True)


def connect(settings: Settings) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id."""
    if settings.tracking_uri.startswith("sqlite:///"):
        Path(settings.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
            parents=True, exist_ok=True
        )
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    try:
        exp = mlflow.get_experiment_by_name(settings.experiment)
        if exp is None:
            return mlflow.create_experiment(
                settings.experiment, artifact_location=settings.artifact_root
            )
    except mlflow.exceptions.MlflowException as exc:
        text = str(exc.message)
        if "unsupported URI" in text:
            why = "not a kind of store MLflow knows"
        elif "failed with exception" in text or "Max retries" in text:
            why = "nothing answers there (is the server running and reachable?)"
        else:
            why = text[:160]
        raise ConfigError(
            f"tracking store {settings.tracking_uri}: {why.splitlines()[0].strip()}. "
            "Fix MLFLOW_TRACKING_URI (sqlite:///path, http(s)://server, postgresql://...) or "
            "unset it to use the store under LEADML_HOME"
        ) from None
    return exp.experiment_id


def _flatten(d: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= _flatten(v, key + ".")
        else:
            out[key] = str(v)[:500]
    return out


class Interrupted(KeyboardInterrupt):
    """SIGTERM during training: raised like Ctrl-C so that the run ends as KILLED."""

    signum = signal.SIGTERM


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted()


def _process_tags() -> dict[str, str]:
    """Who runs a training, so that a later command can tell its process died (kill -9)."""
    me = psutil.Process()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(me.pid),
        STARTED_TAG: f"{me.create_time():.3f}",
    }


def _alive(pid: str | None, started: str | None) -> bool:
    """The process that tagged a run still runs (same pid, same start time: not a reuse)."""
    try:
        return abs(psutil.Process(int(pid or "")).create_time() - float(started or "")) < 1.0
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:
        return True


def end_dead_runs(settings: Settings) -> list[str]:
    """Mark RUNNING trainings of leadml processes on this host that are gone as KILLED.

    A `kill -9` (or the OOM killer) gives a process no chance to end its run; without this it
    would show as RUNNING for ever. Runs of other hosts are left alone: their processes
    cannot be checked from here. Returns the ids of the runs it ended.
    """
    experiment_id = connect(settings)
    c = mlflow.MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    where = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{socket.gethostname()}'"
    ended = []
    for run in c.search_runs([experiment_id], filter_string=where):
        tags = run.data.tags
        if not _alive(tags.get(PID_TAG), tags.get(STARTED_TAG)):
            c.set_terminated(run.info.run_id, "KILLED")
            ended.append(run.info.run_id)
    return ended


@contextlib.contextmanager
def training_run(settings: Settings) -> Iterator[str]:
    """The MLflow run of one training, open from its first step to its last.

    Started before the data is read, so a training that crashes or is stopped anywhere
    leaves a run that says so (FAILED, or KILLED on Ctrl-C / SIGTERM) with how far it got,
    instead of nothing or a run stuck at RUNNING. The run carries the process's host, pid
    and start time, which lets `end_dead_runs` end it after a `kill -9`.
    """
    end_dead_runs(settings)
    run = mlflow.start_run(experiment_id=connect(settings), tags=_process_tags())
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    status = "FAILED"
    try:
        yield run.info.run_id
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        mlflow.end_run(status)


def log_training(
    settings: Settings,
    *,
    config: dict,
    data_summary: dict,
    metrics: dict[str, float],
    artefact_dir: Path,
    scorer_dir: Path,
    spec: FeatureSpec,
    input_example: pd.DataFrame,
    tags: dict[str, str],
    version_tags: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Log one training into the open run (`training_run`), register the pyfunc model with
    its version tags (set with the version, so no moment exists without them) and make it
    the challenger. Returns (run_id, version)."""
    run = mlflow.active_run()
    assert run is not None, "log_training runs inside tracking.training_run"
    mlflow.set_tags(tags)
    mlflow.log_params(_flatten({"config": config, "data": data_summary}))
    mlflow.log_metrics(metrics)
    mlflow.log_artifacts(str(artefact_dir))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=LeadmlPyfunc(),
        artifacts={"scorer": str(scorer_dir)},
        signature=_signature(spec),
        input_example=input_example,
        pip_requirements=_requirements(),
    )
    registered = mlflow.register_model(info.model_uri, settings.model_name, tags=version_tags)
    version = str(registered.version)
    set_alias(settings, CHALLENGER, version)
    return run.info.run_id, version


def _signature(spec: FeatureSpec):
    """Explicit schema: the id is required, every lead field optional (missing is allowed)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    numeric = {c.name for c in spec.columns if c.kind == "numeric"}
    inputs = [
        ColSpec(
            "string",
            spec.id_column if spec.kind == "flat" else "lead_id",
            required=spec.kind == "crm" or spec.id_column != "row_id",
        )
    ]
    fields = [f for f in spec.input_fields() if f not in (spec.id_column, "lead_id")]
    inputs += [ColSpec("double" if f in numeric else "string", f, required=False) for f in fields]
    if spec.kind == "crm":
        inputs += [
            ColSpec("string", "events", required=False),
            ColSpec("string", "as_of", required=False),
        ]
    inputs_any: list[Any] = inputs
    outputs: list[Any] = [
        ColSpec("string", "lead_id"),
        ColSpec("double", "probability"),
        ColSpec("long", "score"),
        ColSpec("string", "band"),
    ]
    return ModelSignature(Schema(inputs_any), Schema(outputs))


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [
        f"{p}=={version(p)}" for p in ("lightgbm", "numpy", "pandas", "scikit-learn", "pyarrow")
    ]


def client(settings: Settings):
    connect(settings)
    return mlflow.MlflowClient(
        tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri
    )


def set_alias(settings: Settings, alias: str, version: str) -> None:
    client(settings).set_registered_model_alias(settings.model_name, alias, str(version))


def set_version_tag(settings: Settings, version: str, key: str, value: str) -> None:
    """Tag a registered version (MLflow keeps tag values up to 5,000 characters)."""
    client(settings).set_model_version_tag(settings.model_name, str(version), key, value[:5000])


def alias_version(settings: Settings, alias: str) -> str | None:
    """The version an alias points at, or None when the model or alias does not exist."""
    c = client(settings)
    try:
        return str(c.get_model_version_by_alias(settings.model_name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def resolve_version(settings: Settings, uri: str) -> str:
    """The registry version a models:/ URI points at now: an alias's target, or the version given."""
    by_alias = re.fullmatch(r"models:/([^/@]+)@(.+)", uri)
    if by_alias:
        try:
            mv = client(settings).get_model_version_by_alias(by_alias[1], by_alias[2])
        except mlflow.exceptions.MlflowException:
            raise LookupError(
                f"{uri}: no such model or alias in {settings.tracking_uri}. Train one "
                "(make demo, or leadml train) or set LEADML_MODEL_URI to an exported model folder"
            ) from None
        return str(mv.version)
    by_version = re.fullmatch(r"models:/([^/@]+)/(\d+)", uri)
    return by_version[2] if by_version else uri


def version_info(settings: Settings, version: str) -> dict:
    mv = client(settings).get_model_version(settings.model_name, str(version))
    return {
        "name": settings.model_name,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "source": mv.source,
    }


def scorer_path(settings: Settings, uri: str) -> Path:
    """Download (or locate) the leadml scorer behind a models:/ or runs:/ URI."""
    connect(settings)
    try:
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except mlflow.exceptions.MlflowException as exc:
        challenger = alias_version(settings, CHALLENGER) if uri.endswith("@champion") else None
        hint = (
            f"; the challenger v{challenger} is not champion (leadml promote says why)"
            if challenger
            else ""
        )
        raise ModelError(
            f"{uri}: not in {settings.tracking_uri} ({exc.message.splitlines()[0]}){hint}. "
            "Train one (leadml train), or pass --model"
        ) from None
    found = list(root.rglob("scorer.json"))
    if not found:
        raise ModelError(f"{uri}: not a leadml model (no scorer.json among its artefacts)")
    return found[0].parent


def load_scorer(settings: Settings, uri: str) -> LeadScorer:
    """A leadml model from a registry/run URI or from an exported folder."""
    if uri.startswith(("models:/", "runs:/")):
        return LeadScorer.load(scorer_path(settings, uri))
    return LeadScorer.load(Path(uri))


def log_artifact(run_id: str, settings: Settings, path: Path, subdir: str | None = None) -> None:
    """Attach a file to an existing run (the ledger report uses this)."""
    client(settings).log_artifact(run_id, str(path), subdir)


def run_metrics(settings: Settings, run_id: str) -> dict[str, float]:
    """A training run's test metrics (model, baseline and best possible, when logged)."""
    return dict(sorted(client(settings).get_run(run_id).data.metrics.items()))


def run_table(settings: Settings, run_id: str, name: str) -> pd.DataFrame:
    """A CSV table a training run logged (reliability.csv, bands.csv, lift.csv, ...)."""
    connect(settings)
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=tmp)
        return pd.read_csv(path)


def _build_export(settings: Settings, version: str) -> Path:
    """A registered version's scorer, with where it came from in its card, written completely
    into a new folder beside the current export (nothing points at it yet)."""
    src = scorer_path(settings, f"models:/{settings.model_name}/{version}")
    folder = champion.new_folder(champion.export_root(settings), version)
    shutil.copytree(src, folder, dirs_exist_ok=True)
    meta = json.loads((folder / "scorer.json").read_text())
    meta["card"] |= {
        "registry": version_info(settings, version),
        "exported_from": f"models:/{settings.model_name}/{version}",
    }
    files.write_text(folder / "scorer.json", json.dumps(meta, indent=1, default=str))
    champion.sync_tree(folder)
    return folder


def _switch(settings: Settings, folder: Path) -> Path:
    """Point the export at a built folder (one rename), then remove the one it replaced."""
    previous = champion.switch(champion.export_root(settings), folder)
    if previous is not None:
        champion.remove(previous)
    return champion.champion_path(settings)


def export(settings: Settings, version: str) -> Path:
    """Export a registered version as the champion folder (`models/champion`, or
    `models/<name>/champion`) for tracking-free scoring and serving; see `leadml.champion`."""
    with champion.locked(settings):
        return _switch(settings, _build_export(settings, version))


def reconcile(settings: Settings) -> list[str]:
    """Make the export agree with the champion alias and clear what killed commands left.

    After a `kill -9` at any point of a promotion, the alias and the export can disagree
    (killed between the two), and version folders or temporary links can be left over. This
    re-exports the alias's version when the export holds another, removes the leftovers and
    ends the runs of killed trainings. Without a tracking store (export-only deployments) it
    leaves the export alone. Returns what it repaired, one phrase each.
    """
    if not settings.store_exists():
        return []
    done = [f"run {r} of a killed training marked KILLED" for r in end_dead_runs(settings)]
    root = champion.export_root(settings)
    wanted = alias_version(settings, CHAMPION)
    if (wanted is None or champion.exported(settings) == (settings.model_name, wanted)) and (
        not champion.leftovers(root)
    ):
        return done
    with champion.locked(settings):  # a promotion in progress finishes first
        wanted = alias_version(settings, CHAMPION)
        held = champion.exported(settings)
        if wanted is not None and held != (settings.model_name, wanted):
            export(settings, wanted)
            was = f"v{held[1]}" if held else "nothing usable"
            done.append(f"export re-made from the champion alias, v{wanted} (it held {was})")
        for path in champion.leftovers(root):
            champion.remove(path)
            done.append(f"removed {path.name}, left by a killed promotion")
    for what in done:
        log.warning("%s: %s", settings.model_name, what)
    return done


_last_failure: list[str] = []


def try_reconcile(settings: Settings) -> None:
    """`reconcile` for readers (score, the service): a repair that fails (a read-only mount,
    a store that does not answer) is logged once, and they read what is there."""
    try:
        reconcile(settings)
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0]
        failure = f"could not check the export against the registry: {type(exc).__name__}: {first}"
        if failure not in _last_failure:  # the service retries every poll: say it once
            log.warning("%s", failure)
        _last_failure[:] = [failure]


def registered_version(settings: Settings, version: str) -> str:
    """The version as the registry has it, or a PromotionError that says what exists."""
    try:
        return str(client(settings).get_model_version(settings.model_name, str(version)).version)
    except mlflow.exceptions.MlflowException:
        challenger = alias_version(settings, CHALLENGER)
        hint = f"; the challenger is v{challenger}" if challenger else ""
        raise PromotionError(
            f"model {settings.model_name!r} has no version {version!r} in {settings.tracking_uri}"
            f"{hint}. Pass a version `make mlflow-ui` lists, or leave out --version"
        ) from None


def _promote_command(settings: Settings, version: str) -> str:
    name = "" if settings.model_name == DEFAULT_MODEL_NAME else f" --name {settings.model_name}"
    return f"`leadml promote{name} --version {version} --force`"


def refusal(settings: Settings, version: str) -> str | None:
    """Why `version` must not become champion without --force, in one line; None if it may.

    A version the leakage guard flagged, or one whose input contract differs from the
    current champion's (`champion.contract_change`): promoted, the service would answer its
    callers 422, or score them with a model that has seen the outcome.
    """
    tags = client(settings).get_model_version(settings.model_name, version).tags
    if tags.get(LEAKAGE_TAG):
        return (
            f"v{version} failed the leakage guard ({tags[LEAKAGE_TAG]}); drop the column and "
            f"retrain (--drop), or promote it anyway with {_promote_command(settings, version)}"
        )
    current = alias_version(settings, CHAMPION)
    if current is None or current == version:
        return None
    uri = f"models:/{settings.model_name}/"
    change = champion.contract_change(
        champion.contract(load_scorer(settings, uri + current)),
        champion.contract(load_scorer(settings, uri + version)),
    )
    if change is None:
        return None
    return (
        f"v{version} takes other input than champion v{current} ({change}), so the service "
        "would refuse its callers' requests; train it under its own name (--name), or promote "
        f"it anyway with {_promote_command(settings, version)}"
    )


def promote(settings: Settings, version: str, *, force: bool = False) -> Path:
    """Make a registered version the champion and export it; returns the export path.

    Refused (PromotionError) when `refusal` has a reason, unless `force`. Under the lock:
    repair what a killed command left, build the new export beside the old, move the alias,
    switch the export with one rename. A kill at any point leaves the old champion or the
    new one (the next command's `reconcile` finishes the switch).
    """
    version = registered_version(settings, version)
    with champion.locked(settings):
        reconcile(settings)
        why = None if force else refusal(settings, version)
        if why:
            raise PromotionError(f"not promoted: {why}")
        folder = _build_export(settings, version)
        current = alias_version(settings, CHAMPION)
        if current is not None and current != version:
            set_alias(settings, PREVIOUS, current)  # where `leadml rollback` goes back to
        set_alias(settings, CHAMPION, version)
        return _switch(settings, folder)


def rollback(settings: Settings) -> tuple[str, str, Path]:
    """Make the previous champion champion again: (the version rolled back from, the version
    now champion, the export path). Alias and export move together under the champion lock
    (`promote`), and a running service follows the export on its next reload poll.

    `previous` then names the version rolled back from, so a second rollback undoes the
    first. Raises PromotionError when no version was ever replaced as champion."""
    with champion.locked(settings):
        reconcile(settings)
        before = alias_version(settings, PREVIOUS)
        current = alias_version(settings, CHAMPION)
        if before is None or current is None or before == current:
            raise PromotionError(
                f"no previous champion of model {settings.model_name!r} to roll back to "
                "(rollback needs a champion replaced by a later promotion); see "
                "`leadml promote --version N` to pick a version by hand"
            )
        # the previous champion served before, so its input contract is not re-checked
        return current, before, promote(settings, before, force=True)


def log_monitor(settings: Settings, result: dict, files: list[Path]) -> str:
    """One MLflow run per `leadml monitor`, in the model's experiment, tagged with the model
    version it judged: the verdict, the headline figures as metrics, the report and JSON as
    artefacts. Returns the run id."""
    d = result.get("discrimination") or {}
    metrics = {
        "monitor_exit_code": float(result["exit_code"]),
        "matured_leads": float(result["readiness"]["leads"]),
        "conversions": float(result["readiness"]["conversions"]),
        "drifted_features": float(len((result.get("drift") or {}).get("drifted", []))),
    }
    metrics |= {f"auc_{k}": float(d[k]) for k in ("auc", "low", "high") if d.get(k) is not None}
    for row in (result.get("calibration") or {}).get("bands", []):
        metrics[f"observed_{row['band']}"] = float(row["observed"])
        metrics[f"predicted_{row['band']}"] = float(row["predicted"])
    model = result["model"]
    tags = {
        "leadml.run": "monitor",
        "leadml.verdict": result["verdict"],
        "leadml.model_version": str(model.get("version")),
        "leadml.period": f"{result['period']['since'][:10]} to {result['period']['until'][:10]}",
    }
    with mlflow.start_run(experiment_id=connect(settings), tags=tags) as run:
        mlflow.log_metrics(metrics)
        mlflow.log_text("\n".join(result["reasons"]) or "no findings", "reasons.txt")
        for path in files:
            mlflow.log_artifact(str(path))
        return run.info.run_id
