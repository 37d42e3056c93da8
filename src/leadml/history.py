"""A lead's history as people read it: its scores newest first, the trend, and what changed
between each score and the one before it, in words.

Pure: it is handed the stored scores (`store.ScoreStore.history`) and builds what
`GET /leads/{id}/history` answers and `leadml history` prints, so both say the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from leadml.store import ScoreRecord, changes, trend

TREND_OVER = 5  # the trend is read over the newest this many scores


@dataclass(frozen=True)
class Change:
    """From one score (`since`) to the next (`at`): score, band, and what moved, in words."""

    since: datetime
    at: datetime
    score_from: int
    score_to: int
    band_from: str
    band_to: str
    what: list[str]


@dataclass(frozen=True)
class LeadHistory:
    lead_id: str
    entries: list[ScoreRecord]  # newest first
    trend: str  # rising / falling / flat
    slope: float  # score points per score, over the newest `trend_over`
    trend_over: int
    changes: list[Change]  # newest first, one per pair of consecutive entries


def describe(lead_id: str, entries: list[ScoreRecord], over: int = TREND_OVER) -> LeadHistory:
    """The history of a lead from its stored scores (newest first)."""
    word, slope = trend(entries, last=over)
    moved = [
        Change(
            since=older.scored_at,
            at=newer.scored_at,
            score_from=older.score,
            score_to=newer.score,
            band_from=older.band,
            band_to=newer.band,
            what=_model_change(newer, older) + changes(newer, older),
        )
        for newer, older in zip(entries, entries[1:], strict=False)
    ]
    return LeadHistory(lead_id, entries, word, slope, min(over, len(entries)), moved)


def _model_change(newer: ScoreRecord, older: ScoreRecord) -> list[str]:
    old = (older.model_name, older.model_version)
    new = (newer.model_name, newer.model_version)
    if old == new:
        return []
    return [f"model changed from {old[0]} v{old[1]} to {new[0]} v{new[1]}"]
