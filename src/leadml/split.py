"""The split of labelled rows into train / valid / calibration / test.

Later periods are held out when the data says when things happened: by CRM cut-off (four or
more), else by time order; only data without dates is split at random, stratified.
"""

from __future__ import annotations

import numpy as np

from leadml.config import TrainConfig
from leadml.labels import Labelled

SLICES = ("test", "calibration", "valid")  # held out, newest first; the rest is "train"
BY_CUTOFF, BY_TIME, STRATIFIED = "time (by cut-off)", "time", "stratified random"


def split(lab: Labelled, config: TrainConfig) -> dict[str, np.ndarray]:
    """Row positions of train / valid / calibration / test (sorted), and the method's name
    under "method".

    With four or more CRM cut-offs: the newest cut-off is the test slice, the one before it
    calibration, the one before that validation, the rest training, so every slice is a
    later period than the ones it is judged against. Otherwise: by time order when the data
    has dates (oldest to train, newest to test; ties keep their order in `lab.order`), else
    stratified random.
    """
    if lab.snapshot is not None and lab.snapshot.max() >= 3:
        return by_cutoff(lab.snapshot)
    s = config.split
    shares = {"test": s.test, "calibration": s.calibration, "valid": s.valid}
    if lab.order is not None:
        return by_time(lab.order, shares)
    return stratified(lab.y, shares, s.seed)


def by_cutoff(snapshot: np.ndarray) -> dict[str, np.ndarray]:
    """Snapshot 0 (newest cut-off) tests, 1 calibrates, 2 validates, 3 and older train."""
    out = {name: np.flatnonzero(snapshot == j) for j, name in enumerate(SLICES)}
    out["train"] = np.flatnonzero(snapshot >= 3)
    out["method"] = np.array([BY_CUTOFF])
    return out


def slice_size(share: float, n: int) -> int:
    """Rows of a held-out slice: its share of `n`, rounded, at least one."""
    return max(int(round(share * n)), 1)


def by_time(order: np.ndarray, shares: dict[str, float]) -> dict[str, np.ndarray]:
    """The newest rows of `order` (positions, oldest first) to test, then calibration, then
    validation; the oldest to train."""
    out, end = {}, len(order)
    for name, share in shares.items():  # newest first
        k = slice_size(share, len(order))
        out[name] = np.sort(order[end - k : end])
        end -= k
    out["train"] = np.sort(order[:end])
    out["method"] = np.array([BY_TIME])
    return out


def stratified(y: np.ndarray, shares: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Held-out slices drawn at random with the same conversion rate (deterministic by seed)."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    rest = np.arange(n)
    out = {}
    for name, share in shares.items():
        k = slice_size(share, n)
        rest, part = train_test_split(rest, test_size=k, stratify=y[rest], random_state=seed)
        out[name] = np.sort(part)
    out["train"] = np.sort(rest)
    out["method"] = np.array([STRATIFIED])
    return out
