"""The Dask engine's table pieces, run in this process without a cluster: the bucket that
keeps a lead and its events in one partition, a piece checked as in memory, repeated ids
across pieces, and the alignment check. On a real cluster: test_dask.py (slow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from leadml import accounting, dask_tables, dataset, values
from leadml.dask_tables import _PIECE, _ROW, BUCKET


@pytest.fixture(scope="module")
def folder(crm_dir, tmp_path_factory):
    """The sample with its first lead repeated at the end, an event of no lead and one of
    an unknown type."""
    out = tmp_path_factory.mktemp("dask_tables") / "crm"
    shutil.copytree(crm_dir, out)
    leads = pd.read_csv(out / "leads.csv", dtype=str, keep_default_na=False)
    pd.concat([leads, leads.iloc[[0]]]).to_csv(out / "leads.csv", index=False)
    events = pd.read_csv(out / "events.csv", dtype=str, keep_default_na=False).head(200)
    events.loc[0, "lead_id"] = "999999999"
    events.loc[1, "event_type"] = "fax_sent"
    events.to_csv(out / "events.csv", index=False)
    return out


def _piece(folder, name: str) -> dataset.Piece:
    (piece,) = dataset.pieces(dataset.table_source(folder, name), split_row_groups=True)
    return piece


def test_a_lead_and_its_events_get_the_same_bucket():
    leads = pd.Series([f"L{i}" for i in range(2000)])
    events = pd.Series(["L7", "L1999", "L7", "L0"])
    b_leads, b_events = dask_tables.bucket_of(leads), dask_tables.bucket_of(events)
    assert b_leads.dtype == np.uint32
    assert b_events.tolist() == [b_leads[7], b_leads[1999], b_leads[7], b_leads[0]]
    np.testing.assert_array_equal(dask_tables.bucket_of(leads), b_leads)  # the same every time
    # and the ids spread over the partitions a shuffle makes of them
    assert np.bincount(b_leads % 4, minlength=4).min() > 350


def test_a_leads_piece_is_checked_as_in_memory_and_keeps_where_each_row_came_from(folder):
    options = dataset.ReadOptions()
    dates = values.DateOrders(None)
    leads, report = dask_tables._leads_piece(_piece(folder, "leads"), 3, options, dates, True)
    memory = dataset.load(folder)
    assert report.rows == memory.read["leads"] == len(leads)  # repeats are found on the client
    assert len(report.rejects) == 0
    assert set(leads[_PIECE]) == {3} and leads[_ROW].tolist() == list(range(len(leads)))
    np.testing.assert_array_equal(leads[BUCKET], dask_tables.bucket_of(leads["lead_id"]))
    assert "email" not in leads and "first_name" not in leads  # only the contract's fields


def test_repeated_ids_across_pieces_keep_the_first_and_reject_the_rest():
    where = pd.DataFrame(
        {"lead_id": ["a", "b", "a", "c", "b"], _PIECE: [0, 0, 1, 1, 1], _ROW: [0, 1, 0, 1, 5]}
    )
    pieces = [
        dataset.Piece(Path(f"leads/part-{i}.parquet"), f"leads/part-{i}.parquet") for i in (0, 1)
    ]
    rejects = accounting.Rejects()
    dup = dask_tables._duplicates(where, pieces, rejects)
    assert dup == frozenset({(1, 0), (1, 5)})
    f = rejects.frame
    assert f[["file", "row", "lead_id"]].values.tolist() == [
        ["leads/part-1.parquet", 1, "a"],
        ["leads/part-1.parquet", 6, "b"],
    ]
    assert set(f["reason"]) == {accounting.DUPLICATE_ID}
    partition = where.assign(x=range(5))
    kept = dask_tables._without(partition, dup)
    assert kept["lead_id"].tolist() == ["a", "b", "c"] and list(kept.columns) == ["lead_id", "x"]
    assert list(dask_tables._without(partition, frozenset()).columns) == ["lead_id", "x"]


def test_an_events_piece_rejects_as_in_memory_and_buckets_by_lead(folder):
    memory = dataset.load(folder)
    ids = pd.Index(memory.leads["lead_id"])
    events, report = dask_tables._events_piece(
        _piece(folder, "events"), dataset.ReadOptions(), values.DateOrders(None), ids, frozenset()
    )
    assert report.rows == 200 and len(events) == 198
    got = report.rejects.frame
    want = memory.rejects.frame
    pd.testing.assert_frame_equal(got, want[want["table"] == "events"].reset_index(drop=True))
    np.testing.assert_array_equal(events[BUCKET], dask_tables.bucket_of(events["lead_id"]))


def test_aligned_partitions_pass_and_a_misplaced_event_is_a_bug():
    leads = pd.DataFrame({"lead_id": ["a", "b"]})
    events = pd.DataFrame({"lead_id": ["a", "a", "b"], BUCKET: [1, 1, 2]})
    assert list(dask_tables.aligned(leads, events).columns) == ["lead_id"]
    stray = pd.DataFrame({"lead_id": ["a", "z"], BUCKET: [1, 9]})
    with pytest.raises(RuntimeError, match="not aligned"):
        dask_tables.aligned(leads, stray)
    # only the labelled leads of a partition: an event of another lead is no alarm
    assert len(dask_tables.aligned(leads, stray, every_lead=False)) == 2
