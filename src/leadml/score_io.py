"""What every engine reads and writes when it scores a file: the model (`load_model`), the
input in the model's shape (`check_kind`, `read_for_scoring`), the scores file's columns
(`output_frame`), the rejects and their limit (`check_share`), and the summary a scoring run
hands back (`ScoreSummary`). `score.score_file` picks the engine; `local_engine` and
`dask_scoring` use these steps, so both engines read and write the same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from leadml import accounting, dataset, errors
from leadml.config import Settings
from leadml.files import write_frame
from leadml.grades import LABELS
from leadml.model import LeadScorer


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
    tables: dict[str, accounting.TableCount] = field(default_factory=dict)
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


def check_kind(data_path: Path, scorer: LeadScorer) -> None:
    """A CRM model scores a folder of tables; a flat model scores one file."""
    if scorer.spec.kind == "crm" and not data_path.is_dir():
        raise errors.ContractError(
            f"{data_path}: this model was trained on CRM tables; pass a folder with leads and events to --data"
        )
    if scorer.spec.kind != "crm" and data_path.is_dir():
        raise errors.ContractError(
            f"{data_path}: this model was trained on a flat export; pass the file to --data"
        )


def flat_options(options: dataset.ReadOptions, scorer: LeadScorer) -> dataset.ReadOptions:
    """Reading options for a flat file: the model card's missing markers added to the given."""
    extra = tuple(scorer.card.get("missing_values", ()))
    return replace(options, missing_values=(*options.missing_values, *extra))


def read_for_scoring(
    data_path: Path, scorer: LeadScorer, options: dataset.ReadOptions
) -> tuple[dataset.LeadData, str]:
    """The input to score, read as the model's kind says, and the name rejects give it."""
    if scorer.spec.kind == "crm":
        return dataset.load_crm(data_path, options, require_outcome=False), "leads"
    options = flat_options(options, scorer)
    id_col = None if scorer.spec.id_column == "row_id" else scorer.spec.id_column
    data = dataset.load_flat(
        data_path,
        target=scorer.card.get("target"),
        id_column=id_col,
        options=options,
        require_target=False,
    )
    return data, data_path.name


# after the id: what a scores file says of each lead (grades: see `grades.LABELS`)
OUTPUT_COLUMNS = ("probability", "score", "band", *LABELS)


def output_frame(frame: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """The columns a scores file has: id, probability (6 decimals), score, band, then fit,
    engagement, grid, temperature, stage and pql (empty where the model cannot tell)."""
    out = {id_column: frame[id_column].to_numpy()}
    for name in OUTPUT_COLUMNS:
        values = frame[name].to_numpy()
        out[name] = np.round(values, 6) if name == "probability" else values
    return pd.DataFrame(out)


def check_share(data: dataset.LeadData, options: dataset.ReadOptions, rejects_path: Path):
    """Counts per table; over the reject limit, the rejects file is written and the run stops."""
    try:
        return data.check_reject_share(options.max_reject_share)
    except accounting.TooManyRejects as exc:
        write_frame(exc.rejects, rejects_path)
        raise errors.ContractError(f"{exc} Rejected rows: {rejects_path}") from None


def scored(
    scorer: LeadScorer,
    frame: pd.DataFrame,
    X: pd.DataFrame,
    name: str,
    reasons: bool = False,
    as_of: pd.Timestamp | None = None,
    chunk: int = 50_000,
):
    """What a scoring run computed, as the score store keeps it (`scoring.Scored`): the
    scores and grades of `frame`, the derived features `X`, and with `reasons` the score's
    reasons (computed here, a chunk at a time: LightGBM's SHAP pass makes scoring about 3x
    slower); `name`: the model's when its card has no registry entry. A flat model without an id column numbers its rows: those are
    no ids to keep a history of. `as_of`: the cut-off the run scored at (the data's times
    carry no zone: UTC), so the monitor knows which moment the scores describe."""
    from leadml.scoring import Scored

    registry = scorer.card.get("registry", {})
    values = X.to_numpy(np.float64)
    probability = np.round(frame["probability"].to_numpy(np.float64), 6)
    why: list[dict | None] = [None] * len(values)
    if reasons:
        why = []
        for start in range(0, len(values), chunk):
            part = slice(start, start + chunk)
            why.extend(scorer.reasons(values[part], probability=probability[part]))
    own_ids = scorer.spec.kind == "crm" or scorer.spec.id_column != "row_id"
    ids = frame[scorer.spec.id_column].astype(str).tolist() if own_ids else [None] * len(frame)
    return Scored(
        model=str(registry.get("name", name)),
        model_version=str(registry.get("version", "export")),
        scored_at=datetime.now(UTC),
        lead_ids=ids,
        features=list(X.columns),
        X=values,
        out={name: frame[name].to_numpy() for name in OUTPUT_COLUMNS},
        reasons=why,
        as_of=None if as_of is None else _utc(as_of),
    )


def _utc(as_of: pd.Timestamp) -> datetime:
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()
