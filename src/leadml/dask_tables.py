"""Reading CRM tables on a Dask cluster: checked pieces, then leads and events in aligned
partitions by lead.

1. Each piece of the leads and events tables (a file, or one row group of a Parquet file)
   is read and checked on a worker by `dataset.check_leads` / `check_events`; bad rows go
   to the rejects with their file and row, as in memory.
2. Leads and events are shuffled (Dask's own shuffle, which spills to disk) into the same
   number of partitions by a hash of the lead id, so partition i of the events holds
   exactly the events of the leads in partition i of the leads (`aligned` checks it).

A flat export is read and checked on the client; `scatter_rows` hands its rows to the
workers in contiguous chunks, in the file's order.
"""

from __future__ import annotations

import contextlib
import itertools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadml import accounting, contract, dataset, errors, readers, values

BUCKET = "_bucket"
_PIECE, _ROW = "_piece", "_row"  # where a lead row came from, to reject repeated ids
EVENTS_PER_PARTITION = 1_500_000  # a partition's features take ~100 bytes per event
FLAT_ROWS_PER_PARTITION = 250_000
_LEAD_FIELDS = ["lead_id", "created_at", "converted", "converted_at", *contract.PROFILE_COLUMNS]


def bucket_of(ids: pd.Series) -> np.ndarray:
    """A hash of each lead id (text, as every reader gives them); the shuffle sends equal
    hashes to the same partition."""
    values = ids.astype(object).to_numpy(object)
    return (pd.util.hash_array(values) & 0xFFFFFFFF).astype(np.uint32)


@dataclass
class _PieceReport:
    """What checking one piece found besides its good rows: rejects (with ids as read), rows
    read, and notes on how it was read."""

    rejects: accounting.Rejects
    rows: int
    notes: list[str]


def _leads_piece(
    piece: dataset.Piece,
    number: int,
    options: dataset.ReadOptions,
    dates: values.DateOrders,
    require_outcome: bool,
) -> tuple[pd.DataFrame, _PieceReport]:
    """One piece of the leads table, checked: (good rows with their bucket, piece number and
    row in the file, what was found)."""
    rejects = accounting.Rejects()
    raw = dataset.read_piece(piece, options.sep)
    leads = dataset.check_leads(raw, piece, rejects, options, dates, require_outcome)
    rows = leads.index.to_numpy()
    leads = leads[[c for c in _LEAD_FIELDS if c in leads]].reset_index(drop=True)
    for col in contract.PROFILE_COLUMNS:  # the same columns and types in every piece
        leads[col] = leads[col].astype(object).where(leads[col].notna(), None)
    leads = leads.assign(**{BUCKET: bucket_of(leads["lead_id"]), _PIECE: number, _ROW: rows})
    notes = [f"{piece.name}: {n}" for n in raw.notes] + dates.notes()
    return leads, _PieceReport(rejects, raw.rows, notes)


def _events_piece(
    piece: dataset.Piece,
    options: dataset.ReadOptions,
    dates: values.DateOrders,
    lead_ids: pd.Index,
    rejected_ids: frozenset,
) -> tuple[pd.DataFrame, _PieceReport]:
    """One piece of the events table, checked against the good leads' ids."""
    rejects = accounting.Rejects()
    raw = dataset.read_piece(piece, options.sep)
    events = dataset.check_events(
        raw, piece, lead_ids, rejects, options, dates, rejected_ids, categorical=False
    )
    notes = [f"{piece.name}: {n}" for n in raw.notes] + dates.notes()
    return events.assign(**{BUCKET: bucket_of(events["lead_id"])}), _PieceReport(
        rejects, raw.rows, notes
    )


def _without(leads: pd.DataFrame, duplicates: frozenset) -> pd.DataFrame:
    """A partition of leads without the rows (piece, row) rejected as duplicate ids."""
    if duplicates:
        keys = zip(leads[_PIECE].to_numpy(), leads[_ROW].to_numpy(), strict=True)
        leads = leads[[k not in duplicates for k in keys]]
    return leads.drop(columns=[_PIECE, _ROW])


def _first(pair: tuple) -> Any:
    return pair[0]


def _second(pair: tuple) -> Any:
    return pair[1]


def aligned(leads: pd.DataFrame, events: pd.DataFrame, every_lead: bool = True) -> pd.DataFrame:
    """The events of one partition. When `leads` are all the partition's leads (not just the
    labelled ones), check that every event belongs to one of them: the shuffle's promise."""
    events = events.drop(columns=BUCKET)
    if every_lead and len(events) and not events["lead_id"].isin(leads["lead_id"]).all():
        raise RuntimeError(
            "leads and events partitions are not aligned (a shuffle placed an event away from its lead)"
        )
    return events


@dataclass
class CrmTables:
    """Checked CRM tables on the cluster, in aligned partitions by lead."""

    leads: Any  # dask DataFrame
    events: Any
    data: dataset.LeadData  # no rows: rejects, rows read per table, source, notes

    @property
    def rejects(self) -> accounting.Rejects:
        return self.data.rejects

    def counts(self) -> dict[str, accounting.TableCount]:
        return self.data.counts()


def read_crm(
    client: Any,
    folder: Path,
    options: dataset.ReadOptions | None,
    require_outcome: bool,
    partitions: int | None = None,
) -> CrmTables:
    """Read and check a CRM folder on the cluster; leads and events in aligned partitions.

    The same checks as in memory, a piece at a time on the workers; the client keeps the
    lead ids (to reject events of unknown leads and repeated ids) and the rejects."""
    import dask
    import dask.dataframe as dd

    options = options or dataset.ReadOptions()
    folder = Path(folder).resolve()  # workers resolve paths from their own directory
    if not folder.is_dir():
        raise errors.ContractError(
            f"{folder}: not a folder of CRM tables: pass a folder with leads and events "
            "(files or folders of Parquet parts)."
        )
    leads_src = dataset.table_source(folder, "leads")
    events_src = dataset.table_source(folder, "events")
    lead_pieces = dataset.pieces(leads_src, split_row_groups=True)
    event_pieces = dataset.pieces(events_src, split_row_groups=True)
    dates = values.DateOrders(options.date_format)
    if dates.explicit is None:
        dataset.sample_date_orders(
            dates,
            {
                p.name: readers.read_head(p.path, options.sep)
                for p in (lead_pieces[0], event_pieces[0])
            },
        )
    lead_pairs = [
        dask.delayed(_leads_piece)(p, i, options, dates, require_outcome)
        for i, p in enumerate(lead_pieces)
    ]
    leads = dd.from_delayed([dask.delayed(_first)(p) for p in lead_pairs], verify_meta=False)
    lead_reports = [dask.delayed(_second)(p) for p in lead_pairs]
    with _mixed_collections():
        leads, lead_reports = dask.persist(leads, lead_reports)
    where = leads[["lead_id", _PIECE, _ROW]].compute().reset_index(drop=True)
    (lead_reports,) = dask.compute(lead_reports)
    rejects = accounting.Rejects([p for r in lead_reports for p in r.rejects.parts])
    duplicates = _duplicates(where, lead_pieces, rejects)
    leads = leads.map_partitions(
        _without, duplicates, meta=leads._meta.drop(columns=[_PIECE, _ROW])
    )
    ids = pd.Index(where["lead_id"]).unique()
    rejected_ids = frozenset(rejects.ids("leads") - set(ids))
    id_index = client.scatter(ids, broadcast=True)
    event_pairs = [
        dask.delayed(_events_piece)(p, options, dates, id_index, rejected_ids) for p in event_pieces
    ]
    events = dd.from_delayed([dask.delayed(_first)(p) for p in event_pairs], verify_meta=False)
    event_reports = [dask.delayed(_second)(p) for p in event_pairs]
    workers = len(client.scheduler_info()["workers"])
    n = partitions or max(2 * workers, int(np.ceil(_rows(event_pieces) / EVENTS_PER_PARTITION)))
    leads = leads.shuffle(on=BUCKET, npartitions=n)
    events = events.shuffle(on=BUCKET, npartitions=n)
    with _mixed_collections():
        leads, events, event_reports = dask.persist(leads, events, event_reports)
    (event_reports,) = dask.compute(event_reports)
    rejects.extend(accounting.Rejects([p for r in event_reports for p in r.rejects.parts]))
    files = dataset.table_files(leads_src) + dataset.table_files(events_src)
    notes = list(dict.fromkeys(n for r in [*lead_reports, *event_reports] for n in r.notes))
    data = dataset.LeadData(
        "crm",
        pd.DataFrame(),
        None,
        "lead_id",
        "converted",
        "created_at",
        rejects,
        {"paths": [str(leads_src), str(events_src)], "hash": dataset.file_hash(files)},
        read={
            "leads": sum(r.rows for r in lead_reports),
            "events": sum(r.rows for r in event_reports),
        },
        notes=notes,
    )
    return CrmTables(leads, events, data)


def _duplicates(
    where: pd.DataFrame, pieces: list[dataset.Piece], rejects: accounting.Rejects
) -> frozenset:
    """Rows (piece, row) whose id an earlier row already has: rejected, as in memory."""
    dup = where["lead_id"].duplicated(keep="first").to_numpy(bool)
    for number, part in where[dup].groupby(_PIECE, sort=True):
        rejects.add(
            "leads",
            pieces[int(number)].name,
            part[_ROW].to_numpy(),
            part["lead_id"].to_numpy(),
            "lead_id",
            accounting.DUPLICATE_ID,
            "lead_id",
        )
    return frozenset(zip(where.loc[dup, _PIECE], where.loc[dup, _ROW], strict=True))


@contextlib.contextmanager
def _mixed_collections() -> Iterator[None]:
    """Checked rows (a DataFrame) and their rejects (plain objects) come from the same piece
    tasks and are persisted together, so each piece is read once; Dask warns that this
    materialises the DataFrame's plan, which costs nothing here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Computing mixed collections")
        yield


def _rows(pieces: list[dataset.Piece]) -> int:
    """Rows in the Parquet pieces (from their footers); CSV files count as one partition."""
    import pyarrow.parquet as pq

    total = 0
    for p in pieces:
        if p.row_group is not None:
            total += pq.ParquetFile(p.path).metadata.row_group(p.row_group).num_rows
    return total


def scatter_rows(client: Any, frame: pd.DataFrame, partitions: int | None) -> list:
    """`frame`'s rows on the workers, in order, as futures of contiguous chunks: `partitions`
    of them, or two per worker and at most `FLAT_ROWS_PER_PARTITION` rows each."""
    workers = len(client.scheduler_info()["workers"])
    n = partitions or max(2 * workers, -(-len(frame) // FLAT_ROWS_PER_PARTITION))
    n = max(1, min(n, len(frame)))
    bounds = np.linspace(0, len(frame), n + 1).astype(int)
    return client.scatter([frame.iloc[a:b] for a, b in itertools.pairwise(bounds)])
