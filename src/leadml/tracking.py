"""Everything that talks to MLflow: runs, the pyfunc model, the registry and its aliases.

No other module imports mlflow. The default store is embedded (sqlite file under
`<home>/mlruns/`), so a fresh machine needs no server. Promotion is by alias
(`challenger`, `champion`), never by the deprecated registry stages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from leadml import champion
from leadml.config import Settings
from leadml.dataset import events_from_records
from leadml.features import FeatureSpec
from leadml.model import LeadScorer

CHALLENGER, CHAMPION = "challenger", "champion"


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
    """Score request-shaped rows (see `LeadmlPyfunc`): lead_id, probability, score, band."""
    leads, events, as_of = events_from_records(frame, scorer.spec.kind == "crm")
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
    exp = mlflow.get_experiment_by_name(settings.experiment)
    if exp is None:
        return mlflow.create_experiment(
            settings.experiment, artifact_location=settings.artifact_root
        )
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
) -> tuple[str, str]:
    """One MLflow run for one training; registers the pyfunc model. Returns (run_id, version)."""
    experiment_id = connect(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=tags.get("run_name")) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(_flatten({"config": config, "data": data_summary}))
        mlflow.log_metrics(metrics)
        mlflow.log_artifacts(str(artefact_dir))
        signature = _signature(spec)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=LeadmlPyfunc(),
            artifacts={"scorer": str(scorer_dir)},
            signature=signature,
            input_example=input_example,
            registered_model_name=settings.model_name,
            pip_requirements=_requirements(),
        )
    version = str(info.registered_model_version)
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
    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    found = list(root.rglob("scorer.json"))
    if not found:
        raise FileNotFoundError(f"{uri}: not a leadml model (no scorer.json among its artefacts)")
    return found[0].parent


def load_scorer(settings: Settings, uri: str) -> LeadScorer:
    """A leadml model from a registry/run URI or from an exported folder."""
    if uri.startswith(("models:/", "runs:/")):
        return LeadScorer.load(scorer_path(settings, uri))
    return LeadScorer.load(Path(uri))


def export(settings: Settings, version: str, target: Path | None = None) -> Path:
    """Copy a registered version's scorer to `models/champion` (`models/<name>/champion`)
    atomically, for tracking-free serving."""
    target = Path(target or champion.champion_path(settings))
    src = scorer_path(settings, f"models:/{settings.model_name}/{version}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".export-"))
    shutil.copytree(src, tmp, dirs_exist_ok=True)
    card_path = tmp / "scorer.json"
    meta = json.loads(card_path.read_text())
    meta["card"] |= {
        "registry": version_info(settings, version),
        "exported_from": f"models:/{settings.model_name}/{version}",
    }
    card_path.write_text(json.dumps(meta, indent=1, default=str))
    old = target.with_name(target.name + ".old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


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


def promote(settings: Settings, version: str) -> Path:
    """Move the champion alias to a version and export it to models/champion."""
    set_alias(settings, CHAMPION, version)
    return export(settings, version)
