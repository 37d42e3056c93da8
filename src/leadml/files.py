"""Writes that cannot tear: every file leadml writes (scores, rejects, reports, exports) goes
to a temporary name in the same folder, is flushed to disk, and is then renamed into place.

A kill or a full disk at any moment leaves either the previous file or the new one, never
half of one under the real name. A temporary file left by a killed process carries that
process's id in its name; the next write to the same path removes it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def temporary_name(path: Path) -> Path:
    """Where a write to `path` goes first: a hidden sibling named after this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_leftovers(path: Path) -> list[Path]:
    """Temporary siblings of `path` whose writer is gone (killed mid-write); returns them."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.tmp$")
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for other in path.parent.iterdir():
        m = pattern.match(other.name)
        if m and not _alive(int(m[1])):
            with contextlib.suppress(OSError):
                if other.is_dir():
                    import shutil

                    shutil.rmtree(other)
                else:
                    other.unlink()
                removed.append(other)
    return removed


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes `path` in one rename.

    On any error (or interrupt) the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_text(path: Path | str, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_frame(frame: pd.DataFrame, path: Path | str) -> Path:
    """A table as CSV, or Parquet when the name ends in .parquet; written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path
