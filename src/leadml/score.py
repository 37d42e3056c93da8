"""Batch scoring: new leads in the training shape -> id, probability, score, band.

Every input row ends up in the output or in the rejects file next to it, with its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leadml import dataset
from leadml.config import Settings
from leadml.model import LeadScorer

log = logging.getLogger(__name__)


@dataclass
class ScoreSummary:
    out_path: Path
    rejects_path: Path
    rows_in: int
    scored: int
    rejected: int
    bands: dict[str, int]
    as_of: str | None
    model: str


def default_model_uri(settings: Settings) -> str:
    """The exported champion when there is one (no tracking store needed), else the registry alias."""
    from leadml.champion import champion_path

    export = champion_path(settings)
    if (export / "scorer.json").exists():
        return str(export)
    return f"models:/{settings.model_name}@champion"


def load_model(settings: Settings, uri: str | None) -> tuple[LeadScorer, str]:
    """The model behind a URI or folder; by default the champion, with the export first
    brought in line with the registry alias (`tracking.reconcile`) when there is a store."""
    from leadml.champion import is_champion_path

    if (uri is None or is_champion_path(settings, uri)) and settings.store_exists():
        from leadml import tracking

        tracking.try_reconcile(settings)
    uri = uri or default_model_uri(settings)
    if uri.startswith(("models:/", "runs:/")):
        from leadml import tracking

        return tracking.load_scorer(settings, uri), uri
    # resolved once: the champion link may switch to another version while this reads
    return LeadScorer.load(Path(uri).resolve()), uri


def rejects_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".rejects.csv")


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def score_file(
    data_path: Path | str, out: Path | str, settings: Settings, model_uri: str | None = None,
    sep: str | None = None, as_of: str | None = None, engine=None,
) -> ScoreSummary:  # fmt: skip
    """Score a CRM folder or a flat export with a trained model; write output and rejects.

    `engine`: None to score in memory, or a `leadml.dask_engine.DaskEngine` (CRM models),
    which writes `out` as a folder of Parquet parts, or as one CSV when it ends in .csv."""
    if engine is not None:
        return engine.score_file(data_path, out, settings, model_uri, sep, as_of)
    data_path, out = Path(data_path), Path(out)
    scorer, uri = load_model(settings, model_uri)
    spec, card = scorer.spec, scorer.card
    if spec.kind == "crm":
        if not data_path.is_dir():
            raise dataset.ContractError(
                f"{data_path}: this model was trained on CRM tables; pass a folder with leads and events to --data"
            )
        data = dataset.load_crm(data_path, sep, require_outcome=False)
        rows_in = int(
            len(data.leads)
            + sum(
                p["file"].eq(Path(data.source["paths"][0]).name).sum() for p in data.rejects.parts
            )
        )
        cut = pd.Timestamp(as_of) if as_of else _latest(data)
        leads = data.leads
    else:
        if data_path.is_dir():
            raise dataset.ContractError(
                f"{data_path}: this model was trained on a flat export; pass the file to --data"
            )
        id_col = None if spec.id_column == "row_id" else spec.id_column
        data = dataset.load_flat(data_path, target=card.get("target"), id_column=id_col, sep=sep,
                                 missing_values=card.get("missing_values", ()), require_target=False)  # fmt: skip
        rows_in = data.source["rows_read"]
        cut, leads = None, data.leads
    out_frame, feats = scorer.score_leads(
        leads, data.events, as_of=cut, source=data_path.name if data_path.is_file() else "leads"
    )
    data.rejects.extend(feats.rejects)
    result = pd.DataFrame(
        {
            spec.id_column: out_frame[spec.id_column].to_numpy(),
            "probability": np.round(out_frame["probability"].to_numpy(), 6),
            "score": out_frame["score"].to_numpy(),
            "band": out_frame["band"].to_numpy(),
        }
    )
    _write(result, out)
    rej = data.rejects.frame
    rpath = rejects_path_for(out)
    rej.to_csv(rpath, index=False)
    lead_rejects = (
        int(rej["row"].count())
        if spec.kind == "flat"
        else int((rej["file"] == Path(data.source["paths"][0]).name).sum())
    )
    if len(result) + lead_rejects != rows_in:
        raise RuntimeError(
            f"bookkeeping error: {rows_in} rows in, {len(result)} scored, {lead_rejects} rejected"
        )
    return ScoreSummary(
        out_path=out, rejects_path=rpath, rows_in=rows_in, scored=len(result), rejected=lead_rejects,
        bands=result["band"].value_counts().to_dict(), as_of=str(cut) if cut is not None else None, model=uri,
    )  # fmt: skip


def _latest(data: dataset.LeadData) -> pd.Timestamp:
    """Default cut-off for scoring: the latest activity in the data (the data's 'now')."""
    stamps = [data.leads["created_at"].max()]
    if data.events is not None and len(data.events):
        stamps.append(data.events["occurred_at"].max())
    return max(pd.Timestamp(s) for s in stamps if pd.notna(s)) + pd.Timedelta(seconds=1)
