"""The score store: every score kept, read back as a lead's history (issue 16, first part).

The only module that talks to the score database, as `tracking.py` is for MLflow. SQLAlchemy
Core, so the same code runs on SQLite (the default, a file under the home) and PostgreSQL
(`LEADML_STORE_URL=postgresql+psycopg://...`). Rows hold ids, scores, reason points and a
rounded feature fingerprint only: never personal data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

metadata = sa.MetaData()
scores = sa.Table(
    "scores",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.String(200), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("band", sa.String(50), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Index("ix_scores_lead_time", "lead_id", "scored_at"),
)


@dataclass(frozen=True)
class ScoreRecord:
    """One score as stored: reasons are (field, points); the fingerprint maps feature -> value."""

    lead_id: str
    scored_at: datetime
    model_name: str
    model_version: str
    probability: float
    score: int
    band: str
    reasons: tuple[tuple[str, float], ...] = ()
    fingerprint: tuple[tuple[str, float], ...] = ()


def fingerprint(features: dict[str, float], digits: int = 3) -> tuple[tuple[str, float], ...]:
    """A compact, comparable copy of a lead's derived features: each rounded to `digits` significant digits."""
    return tuple((name, float(f"{value:.{digits}g}")) for name, value in sorted(features.items()))


def default_url(home: Path) -> str:
    """SQLite file under the project home: nothing to start."""
    return f"sqlite:///{Path(home) / 'store.db'}"


class ScoreStore:
    """Write and read scores; the schema is created on open."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, future=True)
        metadata.create_all(self.engine)

    def record(self, records: list[ScoreRecord]) -> None:
        """Insert many scores in one transaction."""
        if not records:
            return
        rows = [
            {
                "lead_id": r.lead_id,
                "scored_at": r.scored_at.astimezone(UTC),
                "model_name": r.model_name,
                "model_version": r.model_version,
                "probability": r.probability,
                "score": r.score,
                "band": r.band,
                "reasons": json.dumps([list(x) for x in r.reasons]),
                "fingerprint": json.dumps([list(x) for x in r.fingerprint]),
            }
            for r in records
        ]
        with self.engine.begin() as conn:
            conn.execute(scores.insert(), rows)

    def history(self, lead_id: str, limit: int = 100) -> list[ScoreRecord]:
        """A lead's scores, newest first; empty when the lead was never scored."""
        query = (
            sa.select(scores)
            .where(scores.c.lead_id == lead_id)
            .order_by(scores.c.scored_at.desc(), scores.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]

    def latest(self, lead_id: str) -> ScoreRecord | None:
        """The lead's newest score, or None."""
        found = self.history(lead_id, limit=1)
        return found[0] if found else None

    def prune(self, days: int, now: datetime | None = None) -> int:
        """Delete scores older than `days`; returns how many went."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
        with self.engine.begin() as conn:
            return conn.execute(scores.delete().where(scores.c.scored_at < cutoff)).rowcount


def _record(row: sa.RowMapping) -> ScoreRecord:
    scored_at = row["scored_at"]
    if scored_at.tzinfo is None:  # SQLite keeps no zone; everything stored is UTC
        scored_at = scored_at.replace(tzinfo=UTC)
    return ScoreRecord(
        lead_id=row["lead_id"],
        scored_at=scored_at,
        model_name=row["model_name"],
        model_version=row["model_version"],
        probability=row["probability"],
        score=row["score"],
        band=row["band"],
        reasons=tuple((f, float(p)) for f, p in json.loads(row["reasons"])),
        fingerprint=tuple((f, float(v)) for f, v in json.loads(row["fingerprint"])),
    )


def trend(history: list[ScoreRecord], last: int = 5, flat_below: float = 0.5) -> tuple[str, float]:
    """Rising / falling / flat over the last entries (newest first), with the slope in points per entry."""
    points = [r.score for r in reversed(history[:last])]
    if len(points) < 2:
        return "flat", 0.0
    n = len(points)
    mean_x, mean_y = (n - 1) / 2, sum(points) / n
    slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(points)) / sum(
        (i - mean_x) ** 2 for i in range(n)
    )
    word = "flat" if abs(slope) < flat_below else "rising" if slope > 0 else "falling"
    return word, round(slope, 3)


def changes(newer: ScoreRecord, older: ScoreRecord) -> list[str]:
    """What moved between two scores, in words: features whose value changed, reasons whose points did."""
    words = []
    old_features, new_features = dict(older.fingerprint), dict(newer.fingerprint)
    for name in sorted(set(old_features) | set(new_features)):
        before, after = old_features.get(name), new_features.get(name)
        if before != after:
            words.append(f"feature {name} changed from {before} to {after}")
    old_reasons, new_reasons = dict(older.reasons), dict(newer.reasons)
    for name in sorted(set(old_reasons) | set(new_reasons)):
        before_p, after_p = old_reasons.get(name, 0.0), new_reasons.get(name, 0.0)
        if before_p != after_p:
            words.append(f"reason {name} moved from {before_p:+g} to {after_p:+g} points")
    return words
