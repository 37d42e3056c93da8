"""The workspace's Bands page: where should the MQL and SQL lines be?

Everything is recounted from the model card's `backtest_histogram` (test leads and their
conversions per 1-point probability bin, saved at training), so moving a line costs a few
array sums, not a model: leads per band, their conversion, and per week at the lead volume the
training data had (or the one typed in). Three ways to pick the lines: set both chances, or
"top N per week" (the SQL line that sends sales at most N leads a week), or "minimum
precision" (the lowest SQL line whose leads converted at least that often). Saving (admin
only) writes `bands.json` beside the champion export, which the service applies at its next
reload, and tags the registry version in MLflow.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from leadml.bands import BandThresholds, SavedLines, check_lines


@dataclass(frozen=True)
class Backtest:
    """Test leads and conversions per probability bin (bin i: chances i/bins to (i+1)/bins)."""

    leads: np.ndarray
    conversions: np.ndarray

    @property
    def bins(self) -> int:
        return len(self.leads)

    @classmethod
    def from_card(cls, card: dict) -> Backtest | None:
        h = card.get("backtest_histogram")
        if not h:
            return None
        return cls(np.asarray(h["leads"], float), np.asarray(h["conversions"], float))

    def first_bin(self, line: float) -> int:
        """The first bin whose leads are at or above a chance `line` (lines are read to the
        nearest point: the histogram's resolution)."""
        return int(min(max(math.ceil(round(line * self.bins, 6)), 0), self.bins))

    def above(self, line: float) -> tuple[float, float]:
        i = self.first_bin(line)
        return float(self.leads[i:].sum()), float(self.conversions[i:].sum())


def weekly_volume(card: dict) -> float | None:
    """New leads a week in the training data: its leads over the weeks its dates span."""
    data = card.get("data") or {}
    try:
        days = (np.datetime64(data["date_max"][:19]) - np.datetime64(data["date_min"][:19])) / (
            np.timedelta64(1, "D")
        )
        leads = float(data.get("leads") or data["tables"]["leads"]["used"])
    except (KeyError, TypeError, ValueError):
        return None
    return leads / max(days / 7, 1.0)


def table(bt: Backtest, mql: float, sql: float, volume: float | None) -> list[dict]:
    """Per band: test leads, share, conversion, and per week at `volume` new leads a week."""
    total = max(float(bt.leads.sum()), 1.0)
    at_sql, conv_sql = bt.above(sql)
    at_mql, conv_mql = bt.above(mql)
    rows = []
    for band, n, k in (
        ("SQL", at_sql, conv_sql),
        ("MQL", at_mql - at_sql, conv_mql - conv_sql),
        ("Unqualified", total - at_mql, float(bt.conversions.sum()) - conv_mql),
    ):
        share = n / total
        rows.append(
            {
                "band": band,
                "leads": int(n),
                "share": share,
                "conversion": k / n if n else None,
                "per_week": None if volume is None else volume * share,
                "conversions_per_week": None if volume is None else volume * k / total,
            }
        )
    return rows


def top_n_line(bt: Backtest, volume: float, n: float) -> float:
    """The lowest SQL line (on the histogram's points) that sends at most `n` leads a week."""
    total = max(float(bt.leads.sum()), 1.0)
    per_week = volume * np.cumsum(bt.leads[::-1])[::-1] / total  # at or above each bin
    ok = np.flatnonzero(per_week <= n)
    return float(ok[0] / bt.bins) if len(ok) else 1.0


def precision_line(bt: Backtest, rate: float) -> float | None:
    """The lowest SQL line whose leads converted at least `rate` of the time on the test
    leads (None when no line does)."""
    leads = np.cumsum(bt.leads[::-1])[::-1]
    conv = np.cumsum(bt.conversions[::-1])[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.where(leads > 0, conv / leads, np.nan)
    ok = np.flatnonzero(observed >= rate)
    return float(ok[0] / bt.bins) if len(ok) else None


def save(
    settings, path: Path, name: str, version: str, sql: float, mql: float, policy: str
) -> tuple[Path, str]:
    """Write the lines for this model version to `path` (the serving source's `lines_path`;
    temp name + rename: the service never reads half a file) and tag the registry version
    in MLflow; (path, what was recorded where)."""
    from leadml import files

    check_lines(sql, mql)
    saved = SavedLines(
        name,
        version,
        BandThresholds(sql, mql, policy),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = files.write_text(path, json.dumps(saved.as_dict(), indent=1))
    recorded = "not recorded in MLflow (no tracking store here)"
    if settings.store_exists() and version.isdigit():
        from leadml import tracking

        try:
            tracking.set_version_tag(settings, version, "leadml.bands", json.dumps(saved.as_dict()))
            recorded = f"recorded in MLflow as tag leadml.bands on {name} v{version}"
        except Exception as exc:  # the file is the truth; say why MLflow has no copy
            recorded = f"not recorded in MLflow ({type(exc).__name__})"
    return path, recorded
