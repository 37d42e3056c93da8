"""The workspace's lead lookup: a lead's latest score in words, its history as an inline SVG
line chart with the band lines, and what changed between its last two scores.

Pure: handed the stored scores (newest first, read through `routes_leads.read_scores`, the
same reading as `GET /leads/{id}/history`) it builds what the template shows; the history
and the changes come from `history.describe`, so the page and the API say the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from leadml import history as lead_history
from leadml.history import Change, LeadHistory
from leadml.store import ScoreRecord

LIMIT = 50  # the newest this many scores are drawn
W, H = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 96, 14, 40


@dataclass(frozen=True)
class Reason:
    field: str
    points: float

    @property
    def words(self) -> str:
        name = self.field.replace("_", " ")
        verb = "adds" if self.points >= 0 else "takes off"
        points = abs(self.points)
        return f"{name} {verb} {points:g} point{'' if points == 1 else 's'}"


@dataclass(frozen=True)
class LeadView:
    lead_id: str
    latest: ScoreRecord
    positive: list[Reason]  # largest first
    negative: list[Reason]  # most negative first
    history: LeadHistory
    chart: Markup

    @property
    def last_change(self) -> Change | None:
        return self.history.changes[0] if self.history.changes else None


def describe(lead_id: str, entries: list[ScoreRecord], lines: dict) -> LeadView:
    """The lead page's content from its stored scores (newest first) and the band lines
    (the served model's thresholds: {"sql": p, "mql": p}, probabilities)."""
    latest = entries[0]
    reasons = [Reason(f, p) for f, p in latest.reasons]
    positive = sorted((r for r in reasons if r.points > 0), key=lambda r: -r.points)
    negative = sorted((r for r in reasons if r.points < 0), key=lambda r: r.points)
    return LeadView(
        lead_id,
        latest,
        positive,
        negative,
        lead_history.describe(lead_id, entries),
        history_svg(entries, lines),
    )


def _x(i: int, n: int) -> float:
    span = W - LEFT - RIGHT
    return round(LEFT + (span / 2 if n == 1 else span * i / (n - 1)), 1)


def _y(score: float) -> float:
    return round(H - BOTTOM - (H - TOP - BOTTOM) * score / 100, 1)


def history_svg(entries: list[ScoreRecord], lines: dict) -> Markup:
    """The score over the lead's scores (oldest left), the SQL and MQL lines dashed and
    named at their right end; every point has its date, score and band as a tooltip."""
    oldest_first = list(reversed(entries))
    n = len(oldest_first)
    body = [
        f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>',
        f'<text class="axis-label" transform="translate(14 {(TOP + H - BOTTOM) / 2}) '
        'rotate(-90)" text-anchor="middle">Score</text>',
        f'<text class="axis-label" x="{(LEFT + W - RIGHT) / 2}" y="{H - 6}" '
        'text-anchor="middle">Each time the lead was scored, oldest first</text>',
    ]
    for v in (0, 25, 50, 75, 100):
        body.append(
            f'<text class="tick" x="{LEFT - 6}" y="{_y(v) + 4}" text-anchor="end">{v}</text>'
        )
    for band in ("SQL", "MQL"):
        line = lines.get(band.lower())
        if not isinstance(line, float | int) or not 0 <= line <= 1:
            continue  # no model loaded, or a band no lead can reach
        y = _y(line * 100)
        body.append(
            f'<line class="band-line band-line-{band}" x1="{LEFT}" y1="{y}" x2="{W - RIGHT}" '
            f'y2="{y}"/><text class="note-text" x="{W - RIGHT + 6}" y="{y + 4}">'
            f"{band} from {line * 100:.0f}</text>"
        )
    for i in (0, n - 1) if n > 1 else (0,):
        body.append(
            f'<text class="tick" x="{_x(i, n)}" y="{H - BOTTOM + 16}" text-anchor="middle">'
            f"{oldest_first[i].scored_at:%Y-%m-%d}</text>"
        )
    points = " ".join(f"{_x(i, n)},{_y(r.score)}" for i, r in enumerate(oldest_first))
    if n > 1:
        body.append(f'<polyline class="series" points="{points}"/>')
    for i, r in enumerate(oldest_first):
        tip = f"{r.scored_at:%Y-%m-%d %H:%M} UTC: score {r.score}, {r.band}"
        body.append(
            f'<circle class="point" cx="{_x(i, n)}" cy="{_y(r.score)}" r="4">'
            f"<title>{escape(tip)}</title></circle>"
        )
    latest = entries[0]
    head = (
        f'<svg class="chart wide" viewBox="0 0 {W} {H}" role="img" '
        'aria-labelledby="history-title history-desc">'
        '<title id="history-title">The lead\'s score over time</title>'
        f'<desc id="history-desc">{n} scores; the latest is {latest.score} ({latest.band}). '
        "The dashed lines are where the SQL and MQL bands start.</desc>"
    )
    return Markup(head + "".join(body) + "</svg>")
