"""Batch scoring: new leads in the training shape -> id, probability, score, band.

Every input row ends up in the output or in the rejects file next to it, with its reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from leadml import dataset, files, values
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
    tables: dict[str, dataset.TableCount] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


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


def check_paths(data_path: Path, out: Path) -> None:
    """Refuse, before anything is read, an output (or its rejects file) that would overwrite
    an input file or the data folder."""
    data_path = Path(data_path).resolve()
    inputs = {data_path}
    if data_path.is_dir():
        inputs |= {p.resolve() for p in data_path.rglob("*") if p.is_file()}
    for path, what in ((Path(out), "--out"), (rejects_path_for(Path(out)), "its rejects file")):
        if path.resolve() in inputs:
            kind = "folder" if path.resolve() == data_path and data_path.is_dir() else "file"
            raise dataset.ContractError(
                f"{path}: {what} would overwrite the input {kind} {path.resolve()}. Write the "
                "scores to another file, e.g. --out out/scores.csv."
            )


def score_file(
    data_path: Path | str, out: Path | str, settings: Settings, model_uri: str | None = None,
    options: dataset.ReadOptions | None = None, as_of: str | None = None, engine=None,
) -> ScoreSummary:  # fmt: skip
    """Score a CRM folder or a flat export with a trained model; write output and rejects.

    Every row of every table is scored, used or rejected with its reason; a table with more
    rejects than `options.max_reject_share` stops the run (the rejects file is still written,
    the output is not). Output and rejects are written to a temporary name and renamed.

    `engine`: None to score in memory, or a `leadml.dask_engine.DaskEngine` (CRM models),
    which writes `out` as a folder of Parquet parts, or as one CSV when it ends in .csv."""
    data_path, out = Path(data_path), Path(out)
    check_paths(data_path, out)
    options = options or dataset.ReadOptions()
    cut = values.timestamp(as_of, "--as-of") if as_of else None
    if engine is not None:
        return engine.score_file(data_path, out, settings, model_uri, options, cut)
    scorer, uri = load_model(settings, model_uri)
    spec, card = scorer.spec, scorer.card
    rpath = rejects_path_for(out)
    if spec.kind == "crm":
        if not data_path.is_dir():
            raise dataset.ContractError(
                f"{data_path}: this model was trained on CRM tables; pass a folder with leads and events to --data"
            )
        data = dataset.load_crm(data_path, options, require_outcome=False)
        source = "leads"
    else:
        if data_path.is_dir():
            raise dataset.ContractError(
                f"{data_path}: this model was trained on a flat export; pass the file to --data"
            )
        id_col = None if spec.id_column == "row_id" else spec.id_column
        options = replace(
            options, missing_values=(*options.missing_values, *card.get("missing_values", ()))
        )
        data = dataset.load_flat(data_path, target=card.get("target"), id_column=id_col,
                                 options=options, require_target=False)  # fmt: skip
        source = data_path.name
    check_share(data, options, rpath)
    if spec.kind == "crm" and cut is None:
        cut = latest(data)
    out_frame, feats = scorer.score_leads(
        leads := data.leads, data.events, as_of=cut, source=source
    )
    data.rejects.extend(feats.rejects)
    tables = check_share(data, options, rpath)
    result = pd.DataFrame(
        {
            spec.id_column: out_frame[spec.id_column].to_numpy(),
            "probability": np.round(out_frame["probability"].to_numpy(), 6),
            "score": out_frame["score"].to_numpy(),
            "band": out_frame["band"].to_numpy(),
        }
    )
    rows_in, rejected = tables["leads"].read, tables["leads"].rejected_rows
    if len(result) + rejected != rows_in or len(result) > len(leads):
        raise RuntimeError(
            f"bookkeeping error: {rows_in} rows in, {len(result)} scored, {rejected} rejected"
        )
    files.write_frame(result, out)
    files.write_frame(data.rejects.frame, rpath)
    return ScoreSummary(
        out_path=out, rejects_path=rpath, rows_in=rows_in, scored=len(result), rejected=rejected,
        bands=result["band"].value_counts().to_dict(), as_of=str(cut) if cut is not None else None,
        model=uri, tables=tables, notes=data.notes,
    )  # fmt: skip


def check_share(data: dataset.LeadData, options: dataset.ReadOptions, rejects_path: Path):
    """Counts per table; over the reject limit, the rejects file is written and the run stops."""
    try:
        return dataset.check_reject_share(data, options.max_reject_share)
    except dataset.TooManyRejects as exc:
        files.write_frame(exc.rejects, rejects_path)
        raise dataset.ContractError(f"{exc} Rejected rows: {rejects_path}") from None


def latest(data: dataset.LeadData) -> pd.Timestamp:
    """Default cut-off for scoring: the latest activity in the data (the data's 'now'), which
    is never later than the run's own time (later rows are rejected as in the future)."""
    stamps = [data.leads["created_at"].max()]
    if data.events is not None and len(data.events):
        stamps.append(data.events["occurred_at"].max())
    return max(pd.Timestamp(s) for s in stamps if pd.notna(s)) + pd.Timedelta(seconds=1)
