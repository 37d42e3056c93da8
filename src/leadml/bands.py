"""Calibrated probability to a 1-99 score and an SQL / MQL / Unqualified band.

The score is the probability in percent (clipped to 1-99), so "score 40" means a 40 %
chance of converting within the horizon. Band thresholds come from the band policy, cut on
the calibration slice so the test slice stays an honest backtest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from leadml.config import BandConfig

BANDS = ("SQL", "MQL", "Unqualified")


@dataclass(frozen=True)
class BandThresholds:
    """Probabilities at or above which a lead is SQL or MQL."""

    sql: float
    mql: float
    policy: str

    def as_dict(self) -> dict:
        return {"sql": self.sql, "mql": self.mql, "policy": self.policy}


def to_score(probability: np.ndarray) -> np.ndarray:
    """1-99 score: the calibrated probability in percent."""
    return np.clip(np.rint(np.asarray(probability, dtype=float) * 100), 1, 99).astype(np.int64)


def to_band(probability: np.ndarray, thresholds: BandThresholds) -> np.ndarray:
    """Band labels as an object array (SQL, MQL, Unqualified)."""
    p = np.asarray(probability, dtype=float)
    code = np.where(p >= thresholds.sql, 0, np.where(p >= thresholds.mql, 1, 2))
    return np.asarray(BANDS, dtype=object)[code]


def _lowest_threshold_reaching(
    p_sorted_desc: np.ndarray, rate: float, start: int = 0
) -> float | None:
    """Lowest cut t such that leads ranked start..i (p >= t) have mean probability >= rate."""
    tail = p_sorted_desc[start:]
    if tail.size == 0:
        return None
    running = np.cumsum(tail) / np.arange(1, tail.size + 1)
    ok = np.flatnonzero(running >= rate)
    if ok.size == 0:
        return None
    return float(tail[ok[-1]])


def fit_thresholds(policy: BandConfig, probability: np.ndarray) -> BandThresholds:
    """Band thresholds from the policy, using calibrated probabilities of the calibration slice.

    * fixed: the configured probabilities.
    * rate: the lowest thresholds at which the SQL band, then the MQL band, still reach the
      configured conversion rates (expected from calibrated probabilities, which are less
      noisy than the few observed conversions at the top).
    * capacity: the probabilities that put the configured share (or count per period) of
      leads into SQL and into SQL+MQL.
    """
    p = np.sort(np.asarray(probability, dtype=float))[::-1]
    if policy.policy == "fixed":
        return BandThresholds(policy.sql, policy.mql, "fixed")
    if policy.policy == "rate":
        sql = _lowest_threshold_reaching(p, policy.sql)
        sql = float(p[0]) + 1e-9 if sql is None else sql  # nobody reaches the rate: empty SQL band
        start = int(np.searchsorted(-p, -sql, side="right"))
        mql = _lowest_threshold_reaching(p, policy.mql, start)
        mql = sql if mql is None else min(mql, sql)
        return BandThresholds(sql, mql, "rate")
    scale = 1.0 / policy.leads_per_period if policy.leads_per_period else 1.0
    sql_share, mql_share = policy.sql * scale, policy.mql * scale
    sql = float(np.quantile(p, 1 - sql_share)) if sql_share < 1 else 0.0
    mql = float(np.quantile(p, 1 - mql_share)) if mql_share < 1 else 0.0
    return BandThresholds(sql, min(mql, sql), "capacity")


# ---- band lines saved from the workspace (an override of the model's own) -----------------

OVERRIDE_FILE = "bands.json"


@dataclass(frozen=True)
class SavedLines:
    """Band lines a person saved for one model version (the workspace's Bands page)."""

    name: str
    version: str
    thresholds: BandThresholds
    saved_at: str

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "saved_at": self.saved_at,
        } | self.thresholds.as_dict()


def read_saved(path: Path) -> SavedLines | None:
    """The saved lines in `path`, or None when there are none (or the file is unreadable:
    the model's own lines then stay, and the service says why in its log)."""
    import json

    try:
        d = json.loads(path.read_text())
        t = BandThresholds(float(d["sql"]), float(d["mql"]), str(d.get("policy", "saved")))
        return SavedLines(str(d["name"]), str(d["version"]), t, str(d.get("saved_at", "")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        import logging

        logging.getLogger("leadml.api").error("band lines in %s ignored: %s", path, exc)
        return None


def check_lines(sql: float, mql: float) -> None:
    """SQL above MQL, both chances strictly between 0 and 1; a ConfigError says which is off."""
    from leadml.errors import ConfigError

    if not (0 < mql < sql < 1):
        raise ConfigError(
            f"band lines must be 0 < MQL < SQL < 1 (chances), got MQL {mql:g} and SQL {sql:g}"
        )
