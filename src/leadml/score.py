"""Batch scoring: new leads in the training shape -> id, probability, score, band.

Every input row ends up in the output or in the rejects file next to it, with its reason.
`score_file` checks the paths and picks the engine; what the engines read and write is
`score_io`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from leadml import dataset, errors, values
from leadml.config import Settings
from leadml.engine import Engine
from leadml.local_engine import LocalEngine
from leadml.score_io import ScoreSummary, rejects_path_for

if TYPE_CHECKING:
    from leadml.scoring import Keep


def check_paths(data_path: Path, out: Path) -> None:
    """Refuse, before anything is read, an output (or its rejects file) that would overwrite
    an input file or the data folder; a --data that does not exist is named first."""
    data_path = dataset.require_input(data_path).resolve()
    inputs = {data_path}
    if data_path.is_dir():
        inputs |= {p.resolve() for p in data_path.rglob("*") if p.is_file()}
    for path, what in ((Path(out), "--out"), (rejects_path_for(Path(out)), "its rejects file")):
        if path.resolve() in inputs:
            kind = "folder" if path.resolve() == data_path and data_path.is_dir() else "file"
            raise errors.ContractError(
                f"{path}: {what} would overwrite the input {kind} {path.resolve()}. Write the "
                "scores to another file, e.g. --out out/scores.csv."
            )


def score_file(
    data_path: Path | str,
    out: Path | str,
    settings: Settings,
    model_uri: str | None = None,
    options: dataset.ReadOptions | None = None,
    as_of: str | None = None,
    engine: Engine | None = None,
    keep: Keep | None = None,
    keep_reasons: bool = False,
) -> ScoreSummary:
    """Score a CRM folder or a flat export with a trained model; write output and rejects.

    Every row of every table is scored, used or rejected with its reason; a table with more
    rejects than `options.max_reject_share` stops the run (the rejects file is still written,
    the output is not). Output and rejects are written to a temporary name and renamed.
    `as_of` (CRM models): the cut-off to score at; default just after the data's latest
    activity (`labels.scoring_cutoff`).

    `engine`: None to score in memory (`local_engine.LocalEngine`), or a
    `leadml.dask_engine.DaskEngine`, which writes `out` as a folder of Parquet parts, or as
    one CSV when it ends in .csv.

    `keep` is handed what was scored for the score store (`recorder.record_now`), with the
    score's reasons when `keep_reasons`, once the output is written: by the Dask engine once
    per partition."""
    data_path, out = Path(data_path), Path(out)
    check_paths(data_path, out)
    options = options or dataset.ReadOptions()
    cut = values.timestamp(as_of, "--as-of") if as_of else None
    return (engine or LocalEngine()).score_file(
        data_path, out, settings, model_uri, options, cut, keep, keep_reasons
    )
