"""The Dask scoring's file work, in this process without a cluster: each partition's part
(header-less CSV or Parquet) and its band counts, the parts joined into one CSV, the output
folder replaced whole. Scoring on a real cluster: test_dask.py (slow)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from leadml import dask_scoring


def _scores(ids, bands) -> pd.DataFrame:
    n = len(ids)
    grades = {"fit": ["B"] * n, "engagement": ["2"] * n, "grid": ["B2"] * n}
    return pd.DataFrame(
        {"lead_id": ids, "probability": [0.5] * n, "score": [50] * n, "band": bands}
        | grades
        | {"temperature": ["warm"] * n, "stage": ["MoFu"] * n, "pql": [False] * n}
    )


def test_a_part_is_written_without_a_header_and_its_bands_counted(tmp_path):
    part = _scores(["a", "b", "c"], ["SQL", "MQL", "SQL"])
    counts = dask_scoring._write_part(part, str(tmp_path), 7, csv=True)
    assert dict(zip(counts["band"], counts["leads"], strict=True)) == {"SQL": 2, "MQL": 1}
    text = (tmp_path / "part-00007.csv").read_text()
    assert (
        text.splitlines()[0] == "a,0.5,50,SQL,B,2,B2,warm,MoFu,False"
    )  # no header: the parts are joined under one
    dask_scoring._write_part(part, str(tmp_path), 8, csv=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "part-00008.parquet"), part)


def test_band_totals_add_the_parts_up():
    parts = [
        pd.DataFrame({"band": ["SQL", "MQL"], "leads": [2, 1]}),
        pd.DataFrame({"band": ["MQL", "Unqualified"], "leads": [4, 9]}),
    ]
    assert dask_scoring._band_totals(parts) == {"SQL": 2, "MQL": 5, "Unqualified": 9}


def test_parts_join_into_one_csv_under_one_header_in_order(tmp_path):
    first, second = _scores(["a", "b"], ["SQL", "MQL"]), _scores(["c"], ["Unqualified"])
    dask_scoring._write_part(first, str(tmp_path), 0, csv=True)
    dask_scoring._write_part(second, str(tmp_path), 1, csv=True)
    out = tmp_path / "scores.csv"
    parts = [tmp_path / "part-00000.csv", tmp_path / "part-00001.csv"]
    dask_scoring._join_csv(parts, out, "lead_id")
    joined = pd.read_csv(out, dtype={"lead_id": str, "engagement": str})
    expected = pd.concat([first, second], ignore_index=True)
    pd.testing.assert_frame_equal(joined, expected, check_dtype=False)


def test_the_output_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "scores"
    for run in ("first", "second"):
        new = tmp_path / f"scores.{run}.tmp"
        new.mkdir()
        (new / "part-00000.parquet").write_text(run)
        dask_scoring._replace_folder(new, target)
        assert (target / "part-00000.parquet").read_text() == run
        assert not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores"]  # no .old left behind


@pytest.mark.slow
def test_a_kept_partition_describes_the_cut_off_it_was_scored_at(tmp_path, crm_model, crm_small):
    """What a worker keeps for the score store carries the run's as-of, as the in-memory
    engine's does, so a backfill on the cluster is judged at its own date."""
    import pickle

    cut = pd.Timestamp("2026-05-31")
    leads, events = crm_small.leads.head(50), crm_small.events
    frame, feats = crm_model.scorer.score_leads(leads, events, as_of=cut)
    where = dask_scoring._Parts(str(tmp_path), True, str(tmp_path), "leadml")
    dask_scoring._finish_part(crm_model.scorer, frame, feats.X, where, 3, cut)
    with open(tmp_path / "kept-00003.pickle", "rb") as fh:
        kept = pickle.load(fh)
    assert kept.as_of == datetime(2026, 5, 31, tzinfo=UTC)
    assert kept.lead_ids == frame["lead_id"].astype(str).tolist()
