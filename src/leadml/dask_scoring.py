"""Batch scoring on a Dask cluster, for CRM folders and flat exports alike.

Both kinds reach the features the way the in-memory engine does: the model's
`LeadScorer.score_leads`, i.e. `features.build_features`, run unchanged on each partition.

- CRM tables are read and checked on the workers (`dask_tables.read_crm`) and scored per
  pair of aligned leads/events partitions, at one cut-off.
- A flat export is one file with one row per lead, and some of its checks look at whole
  columns (decimal commas, repeated ids), so it is read and checked on the client by
  `score_io.read_for_scoring`, the in-memory engine's own reader; its checked rows are then
  split into partitions and scored on the workers.

Each partition writes its part of the output (Parquet, or header-less CSV); the parts take
the output's name only once all are written, so a failed run never leaves a partial output
that looks complete. When the scores are kept, each partition also leaves what it scored
(`score_io.scored`, a pickle in a folder beside the output, like the parts on storage the
workers and the client share); the client hands them to the score store one partition at a
time once the output is in place, and removes them.
"""

from __future__ import annotations

import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from leadml import accounting, dataset, files, labels, score_io
from leadml.config import Settings
from leadml.dask_tables import BUCKET, aligned, read_crm, scatter_rows
from leadml.model import LeadScorer

if TYPE_CHECKING:
    from leadml.score_io import ScoreSummary
    from leadml.scoring import Keep


@dataclass(frozen=True)
class _Parts:
    """Where a partition writes: the output part (CSV or Parquet) and, when the scores are
    kept, what it scored (`kept`: a folder; `name`: the model's name without a registry
    entry; `reasons`: work out each score's reasons)."""

    folder: str
    csv: bool
    kept: str | None = None
    name: str = ""
    reasons: bool = False


def score_file(
    client: Any,
    partitions: int | None,
    data_path: Path,
    out: Path,
    settings: Settings,
    model_uri: str | None,
    options: dataset.ReadOptions,
    as_of: pd.Timestamp | None,
    keep: Keep | None = None,
    keep_reasons: bool = False,
) -> ScoreSummary:
    """`score.score_file` on the cluster: `out` is a folder of Parquet parts (one per
    partition), or one CSV file when it ends in .csv; rejects are written next to it; `keep`
    is handed each partition's scores after that."""
    data_path, out = Path(data_path), Path(out).resolve()  # the workers write there
    scorer, uri = score_io.load_model(settings, model_uri)
    score_io.check_kind(data_path, scorer)
    rpath = score_io.rejects_path_for(out)
    csv = out.suffix.lower() == ".csv"
    parts = out.with_name(out.name + ".partial")
    kept = out.with_name(out.name + ".kept") if keep is not None else None
    for folder in (parts, kept):
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
    where = _Parts(str(parts), csv, str(kept) if kept else None, settings.model_name, keep_reasons)
    try:
        if scorer.spec.kind == "crm":
            data, bands, as_of = _score_crm(
                client, partitions, data_path, scorer, options, as_of, rpath, where
            )
        else:
            data, bands = _score_flat(client, partitions, data_path, scorer, options, rpath, where)
            as_of = None
        counts = score_io.check_share(data, options, rpath)  # with the features' rejects
        scored = int(sum(bands.values()))
        leads = counts["leads"]
        if scored != leads.used:
            raise RuntimeError(
                f"bookkeeping error: {leads.read} rows in, {scored} scored, {leads.rejected_rows} rejected"
            )
    except BaseException:
        for folder in (parts, kept):
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        raise
    if csv:
        with files.atomic_path(out) as tmp:
            _join_csv(sorted(parts.glob("part-*.csv")), tmp, scorer.spec.id_column)
        shutil.rmtree(parts)
    else:
        _replace_folder(parts, out)
    files.write_frame(data.rejects.frame, rpath)
    if (
        keep is not None and kept is not None
    ):  # after the files: a store problem never costs the scores
        _hand_over(kept, keep)
    return score_io.ScoreSummary(
        out_path=out,
        rejects_path=rpath,
        rows_in=leads.read,
        scored=scored,
        rejected=leads.rejected_rows,
        bands=bands,
        as_of=str(as_of) if as_of is not None else None,
        model=uri,
        tables=counts,
        notes=data.notes,
    )


def _score_crm(
    client: Any,
    partitions: int | None,
    data_path: Path,
    scorer: LeadScorer,
    options: dataset.ReadOptions,
    as_of: pd.Timestamp | None,
    rpath: Path,
    where: _Parts,
) -> tuple[dataset.LeadData, dict[str, int], pd.Timestamp]:
    """A CRM folder, read on the workers and scored per aligned pair of partitions."""
    import dask.dataframe as dd

    tables = read_crm(client, data_path, options, require_outcome=False, partitions=partitions)
    score_io.check_share(tables.data, options, rpath)
    if as_of is None:  # the data's "now", as every engine takes it
        last = [tables.leads["created_at"].max(), tables.events["occurred_at"].max()]
        as_of = labels.scoring_cutoff(dd.compute(*last))
    model = client.scatter(scorer, broadcast=True)
    by_band = dd.map_partitions(
        _crm_part,
        tables.leads,
        tables.events,
        model,
        as_of,
        where,
        align_dataframes=False,
        meta={"band": object, "leads": np.int64},
    ).compute()
    return tables.data, _band_totals([by_band]), as_of


def _score_flat(
    client: Any,
    partitions: int | None,
    data_path: Path,
    scorer: LeadScorer,
    options: dataset.ReadOptions,
    rpath: Path,
    where: _Parts,
) -> tuple[dataset.LeadData, dict[str, int]]:
    """A flat export, read and checked on the client, scored per partition on the workers;
    the rows a feature rejects (an unusable number) join the file's rejects."""
    data, source = score_io.read_for_scoring(data_path, scorer, options)
    score_io.check_share(data, options, rpath)
    chunks = scatter_rows(client, data.leads, partitions)
    model = client.scatter(scorer, broadcast=True)
    futures = [
        client.submit(_flat_part, chunk, model, source, where, number, pure=False)
        for number, chunk in enumerate(chunks)
    ]
    results = client.gather(futures)
    for _, rejects in results:
        data.rejects.extend(rejects)
    return data, _band_totals([counts for counts, _ in results])


def _crm_part(
    leads: pd.DataFrame,
    events: pd.DataFrame,
    scorer: LeadScorer,
    cut: pd.Timestamp,
    where: _Parts,
    partition_info: dict | None = None,
) -> pd.DataFrame:
    """Score one partition's leads at `cut`, write them to part-NNNNN, return how many per
    band."""
    leads = leads.drop(columns=BUCKET).reset_index(drop=True)
    frame, feats = scorer.score_leads(leads, aligned(leads, events), as_of=cut)
    number = partition_info["number"] if partition_info else 0
    return _finish_part(scorer, frame, feats.X, where, number, cut)


def _flat_part(
    leads: pd.DataFrame, scorer: LeadScorer, source: str, where: _Parts, number: int
) -> tuple[pd.DataFrame, accounting.Rejects]:
    """Score one partition of a flat export (rows keep the file's index, so rejects name the
    file's rows); write it to part-NNNNN; return how many per band and the rejects."""
    frame, feats = scorer.score_leads(leads, None, source=source)
    return _finish_part(scorer, frame, feats.X, where, number), feats.rejects


def _finish_part(
    scorer: LeadScorer,
    frame: pd.DataFrame,
    X: pd.DataFrame,
    where: _Parts,
    number: int,
    as_of: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Write one partition's output part (and, when kept, what it scored at `as_of`); how
    many per band."""
    if where.kept is not None:
        scored = score_io.scored(scorer, frame, X, where.name, where.reasons, as_of)
        target = Path(where.kept) / f"kept-{number:05d}.pickle"
        with files.atomic_path(target) as tmp, open(tmp, "wb") as fh:
            pickle.dump(scored, fh, protocol=pickle.HIGHEST_PROTOCOL)
    output = score_io.output_frame(frame, scorer.spec.id_column)
    return _write_part(output, where.folder, number, where.csv)


def _hand_over(kept: Path, keep: Keep) -> None:
    """Each partition's scores to `keep`, one partition in memory at a time; the folder is
    removed afterwards, whatever `keep` did."""
    try:
        for path in sorted(kept.glob("kept-*.pickle")):
            with open(path, "rb") as fh:
                keep(pickle.load(fh))  # noqa: S301 - written by this run's own workers
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def _write_part(result: pd.DataFrame, out: str, number: int, csv: bool) -> pd.DataFrame:
    if csv:
        result.to_csv(Path(out) / f"part-{number:05d}.csv", index=False, header=False)
    else:
        result.to_parquet(Path(out) / f"part-{number:05d}.parquet", index=False)
    counts = result["band"].value_counts()
    return pd.DataFrame({"band": counts.index.astype(str), "leads": counts.to_numpy(np.int64)})


def _band_totals(frames: list[pd.DataFrame]) -> dict[str, int]:
    by_band = pd.concat(frames, ignore_index=True)
    return by_band.groupby("band")["leads"].sum().astype(int).to_dict()


def _replace_folder(new: Path, target: Path) -> None:
    """`new` takes the name `target`; a previous `target` is kept aside until then."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _join_csv(parts: list[Path], out: Path, id_column: str) -> None:
    """One CSV from the partitions' header-less parts, without loading them."""
    with open(out, "wb") as fh:
        fh.write(",".join([id_column, *score_io.OUTPUT_COLUMNS]).encode() + b"\n")
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, fh, 1 << 20)
