"""The workspace's overview: the champion in plain words, its band table, the reliability and
lift charts (inline SVG, drawn here: the service imports no plotting library) and the fit x
engagement grid, all read from the model card, plus the monitor's last verdict.

Pure: handed the card (and the monitor's result), it builds what the template shows, so the
page needs no training code and no computation beyond formatting.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

FIT_LETTERS = ("A", "B", "C", "D")
ENGAGEMENT_NUMBERS = ("1", "2", "3", "4")
MIN_BIN_LEADS = 20  # a reliability bin quoted in words holds at least this many test leads


@dataclass(frozen=True)
class GridCell:
    fit: str
    engagement: str
    leads: int
    conversion: float | None  # None: no test lead in this cell
    shade: float  # 0 (lowest conversion) to 1 (highest): the cell's background strength


@dataclass(frozen=True)
class Monitor:
    """The monitor's last verdict (`leadml monitor`, <home>/monitor/latest.json)."""

    verdict: str
    created_at: str
    reasons: list[str]
    actions: list[str]
    report: bool  # latest.html is there to link to
    problem: str | None = None  # the file could not be read: why


def percent(value: float | None, digits: int = 0) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * 100:.{digits}f}%"


def trained_words(trained_at: str | None, now: datetime | None = None) -> str:
    """'3 days ago, on 2026-12-02': when the model was trained, as people say it."""
    if not trained_at:
        return "at an unknown time (the model card has no training date)"
    when = datetime.fromisoformat(trained_at)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    days = ((now or datetime.now(UTC)).date() - when.astimezone(UTC).date()).days
    ago = {0: "today", 1: "yesterday"}.get(days, f"{days} days ago")
    return f"{ago}, on {when.astimezone(UTC):%Y-%m-%d}"


def auc_words(auc: float | None) -> str:
    if auc is None or not math.isfinite(auc):
        return "Its ranking could not be measured (the test leads had one outcome only)."
    return (
        f"It ranks a lead that converted above one that did not {auc * 100:.0f}% of the time "
        "(50% would be a coin toss, 100% a perfect ranking)."
    )


def calibration_words(reliability: list[dict], ece: float | None) -> str:
    """One reliability bin in words ("of leads given 62%, about 60% converted"): the highest
    bin with enough test leads to be worth quoting, where a wrong probability costs most."""
    enough = [r for r in reliability if r.get("leads", 0) >= MIN_BIN_LEADS]
    if not enough:
        return "Too few test leads to say how well its probabilities match what happened."
    top = max(enough, key=lambda r: r["predicted"])
    words = (
        f"Of the {top['leads']:,} test leads it gave about {percent(top['predicted'])}, "
        f"{percent(top['observed'])} converted."
    )
    if ece is not None and math.isfinite(ece):
        words += (
            f" Across all leads its probabilities are off by {ece * 100:.1f} percentage "
            "points on average."
        )
    return words


def grid_cells(grid: list[dict]) -> list[list[GridCell]]:
    """The backtest's grid as rows A-D of cells 1-4; the shade spans the lowest to the
    highest conversion, so the best cell is the darkest."""
    found = {(str(r["fit"]), str(r["engagement"])): r for r in grid}
    rates = [_finite(r.get("conversion")) for r in grid]
    known = [r for r in rates if r is not None]
    low, high = (min(known), max(known)) if known else (0.0, 1.0)
    rows = []
    for fit in FIT_LETTERS:
        row = []
        for eng in ENGAGEMENT_NUMBERS:
            r = found.get((fit, eng), {})
            rate = _finite(r.get("conversion"))
            shade = 0.0 if rate is None or high <= low else (rate - low) / (high - low)
            row.append(GridCell(fit, eng, int(r.get("leads") or 0), rate, round(shade, 3)))
        rows.append(row)
    return rows


def read_monitor(latest: Path) -> Monitor | None:
    """The monitor's last result, or None when the monitor never ran here."""
    if not latest.exists():
        return None
    report = latest.with_suffix(".html").exists()
    try:
        result = json.loads(latest.read_text())
        return Monitor(
            verdict=str(result["verdict"]),
            created_at=str(result.get("created_at", "")),
            reasons=[str(r) for r in result.get("reasons", [])],
            actions=[str(a) for a in result.get("actions", [])],
            report=report,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem = f"{latest} cannot be read ({type(exc).__name__}): run `leadml monitor` again"
        return Monitor("unknown", "", [], [], report, problem)


# ---- charts --------------------------------------------------------------------------------

W, H = 420, 320  # the charts' drawing size (the SVG scales to its box)
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 52


def _x(v: float, top: float = 1.0) -> float:
    return round(LEFT + (W - LEFT - RIGHT) * v / top, 1)


def _y(v: float, top: float = 1.0) -> float:
    return round(H - BOTTOM - (H - TOP - BOTTOM) * v / top, 1)


def svg(name: str, title: str, desc: str, body: list[str]) -> Markup:
    """An accessible inline chart: role img, a title and a description read out."""
    head = (
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" '
        f'aria-labelledby="{name}-title {name}-desc">'
        f'<title id="{name}-title">{escape(title)}</title>'
        f'<desc id="{name}-desc">{escape(desc)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _axes(x_label: str, y_label: str, y_ticks: list[tuple[float, str]]) -> list[str]:
    out = [
        f'<line class="axis" x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}"/>',
        f'<text class="axis-label" x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>',
        f'<text class="axis-label" transform="translate(14 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]
    for y, label in y_ticks:
        out.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{label}</text>'
        )
    return out


def reliability_svg(reliability: list[dict]) -> Markup:
    """Predicted against observed conversion per probability bin, with the diagonal where
    the two agree; each point carries its numbers as a tooltip."""
    ticks = [(_y(v), f"{v * 100:.0f}%") for v in (0, 0.25, 0.5, 0.75, 1.0)]
    body = _axes("Chance the model gave", "Share that converted", ticks)
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        body.append(
            f'<text class="tick" x="{_x(v)}" y="{H - BOTTOM + 16}" '
            f'text-anchor="middle">{v * 100:.0f}%</text>'
        )
    body.append(
        f'<line class="ideal" x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}"/>'
        f'<text class="note-text" x="{_x(0.1)}" y="{_y(0.22)}">where they agree</text>'
    )
    points = [r for r in reliability if _finite(r.get("observed")) is not None]
    path = " ".join(f"{_x(r['predicted'])},{_y(r['observed'])}" for r in points)
    if path:
        body.append(f'<polyline class="series" points="{path}"/>')
    for r in points:
        tip = (
            f"{r['leads']:,} leads given {percent(r['predicted'])}: "
            f"{percent(r['observed'])} converted"
        )
        body.append(
            f'<circle class="point" cx="{_x(r["predicted"])}" cy="{_y(r["observed"])}" r="5">'
            f"<title>{escape(tip)}</title></circle>"
        )
    return svg(
        "reliability",
        "Reliability: the chance given against the share that converted",
        "One point per group of test leads with a similar chance; the dashed diagonal is "
        "where the chance given equals the share that converted.",
        body,
    )


def lift_svg(lift: list[dict]) -> Markup:
    """Lift per tenth of leads ranked by score: a bar each, its value written on it, and the
    average (lift 1) as a dashed line."""
    rows = [r for r in lift if _finite(r.get("lift")) is not None]
    top = max([r["lift"] for r in rows] + [1.0]) * 1.15
    step = 1 if top < 6 else 2
    ticks = [(_y(v, top), f"×{v}") for v in range(0, int(top) + 1, step)]
    body = _axes(
        "Leads ranked by score, in tenths (1 = the top 10%)", "Conversion vs average", ticks
    )
    n = max(len(lift), 1)
    width = (W - LEFT - RIGHT) / n
    for i, r in enumerate(lift):
        x = LEFT + i * width
        body.append(
            f'<text class="tick" x="{x + width / 2:.1f}" y="{H - BOTTOM + 16}" '
            f'text-anchor="middle">{r["decile"]}</text>'
        )
        value = _finite(r.get("lift"))
        if value is None:
            continue
        tip = f"tenth {r['decile']}: {percent(r['observed'])} converted, ×{value:.1f} the average"
        body.append(
            f'<rect class="bar" x="{x + 3:.1f}" y="{_y(value, top)}" width="{width - 6:.1f}" '
            f'height="{_y(0, top) - _y(value, top):.1f}"><title>{escape(tip)}</title></rect>'
            f'<text class="bar-label" x="{x + width / 2:.1f}" y="{_y(value, top) - 4}" '
            f'text-anchor="middle">{value:.1f}</text>'
        )
    body.append(
        f'<line class="ideal" x1="{LEFT}" y1="{_y(1, top)}" x2="{W - RIGHT}" y2="{_y(1, top)}"/>'
        f'<text class="note-text" x="{W - RIGHT - 4}" y="{_y(1, top) - 4}" '
        'text-anchor="end">average</text>'
    )
    return svg(
        "lift",
        "Lift: how much better than average each tenth of leads converts",
        "One bar per tenth of the test leads ranked by score, the best tenth first; a bar "
        "of 3 converts three times as often as the average lead; the dashed line is the average.",
        body,
    )


def view(card: dict, raw_card: dict, monitor: Monitor | None, now: datetime | None = None):
    """Everything the overview template shows, from the served card (`LoadedModel.card`) and
    the model's own card (which holds the reliability and lift tables)."""
    metrics, data = card.get("metrics") or {}, card.get("data") or {}
    reliability = raw_card.get("reliability") or []
    lift = raw_card.get("lift") or []
    grades = card.get("grades") or {}
    grid = (grades.get("backtest") or {}).get("grid") or []
    return {
        "trained": trained_words(card.get("trained_at"), now),
        "leads": data.get("leads") or data.get("rows"),
        "rows": data.get("rows"),
        "cutoffs": len(data.get("cutoffs") or []),
        "test_leads": metrics.get("leads"),
        "conversion_rate": metrics.get("conversion_rate"),
        "auc_words": auc_words(metrics.get("roc_auc")),
        "calibration_words": calibration_words(reliability, metrics.get("ece")),
        "thresholds": card.get("thresholds") or {},
        "bands": [_clean(b) for b in card.get("band_backtest") or []],
        "reliability_svg": reliability_svg(reliability) if reliability else None,
        "lift_svg": lift_svg(lift) if lift else None,
        "grid": grid_cells(grid) if grid else None,
        "grid_meaning": (grades.get("meaning") or {}).get("grid"),
        "monitor": monitor,
        "percent": percent,
    }


def _clean(row: dict) -> dict:
    """A card row with its NaN cells (a band no test lead fell in) as None."""
    return {k: _finite(v) if isinstance(v, float) else v for k, v in row.items()}


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
