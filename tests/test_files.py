"""Writes that cannot tear: a failed write leaves the previous file whole."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from leadml import files


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "scores.csv"
    files.write_text(path, "lead_id,score\n1,50\n")
    with pytest.raises(RuntimeError), files.atomic_path(path) as tmp:
        tmp.write_text("lead_id,sc")  # half a file, then the disk fills up
        raise RuntimeError("disk full")
    assert path.read_text() == "lead_id,score\n1,50\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_frames_are_written_by_suffix(tmp_path):
    frame = pd.DataFrame({"lead_id": ["007", "7"], "p": [0.1, 0.2]})
    files.write_frame(frame, tmp_path / "a.parquet")
    files.write_frame(frame, tmp_path / "a.csv")
    assert pd.read_parquet(tmp_path / "a.parquet")["lead_id"].tolist() == ["007", "7"]
    assert pd.read_csv(tmp_path / "a.csv", dtype=str)["lead_id"].tolist() == ["007", "7"]


def test_a_killed_writers_leftover_is_removed_by_the_next_write(tmp_path):
    path = tmp_path / "scores.csv"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    leftover = tmp_path / f".scores.csv.{dead}.tmp"
    leftover.write_text("half")
    mine = files.temporary_name(path).with_name(".other.csv.1.tmp")  # not ours to remove
    mine.write_text("x")
    files.write_text(path, "ok\n")
    assert not leftover.exists() and mine.exists() and path.read_text() == "ok\n"
