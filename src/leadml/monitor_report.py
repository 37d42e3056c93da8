"""The monitor's report for people: one HTML page from `leadml monitor`'s result.

`write_html` turns the result dict (the same figures as `<home>/monitor/latest.json`) into one
self-contained page: inline CSS, the charts as embedded PNGs, no link to anything outside, so it
opens offline and can be mailed as it is. A section the monitor could not compute (no outcomes
yet, no training profile) says so in words instead of being left out.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from leadml import files
from leadml.bands import BANDS

TOP_FEATURES = 20
VERDICTS = {  # word, colour, what it means; the word carries the meaning without the colour
    "ok": ("OK", "#1b7f3b", "the model does what it promised"),
    "warn": ("WARNING", "#b36b00", "something moved: look at the reasons below"),
    "alert": ("ALERT", "#b3261e", "act now: see the actions below"),
    "not_ready": ("NOT READY", "#5f6368", "too little matured data to judge yet"),
}
STATUS_MARK = {"ok": "ok", "warn": "warn ▲", "alert": "ALERT ▲▲"}
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}"
    "table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
    "td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
    "tr.warn td{background:#fff4e0}tr.alert td{background:#fde8e6;font-weight:600}"
    ".banner{padding:1rem 1.4rem;border:4px solid;border-radius:.4rem;margin:1rem 0}"
    ".banner strong{font-size:1.8rem;letter-spacing:.05em}"
    "img{max-width:100%;margin:.5rem 0}.missing{color:#555;font-style:italic}"
)


def write_html(result: dict, path: Path) -> Path:
    """Write the monitor's page for `result` to `path` (atomically); returns the path."""
    return files.write_text(path, render_html(result))


def render_html(result: dict) -> str:
    """The whole page: verdict first, then the evidence, most telling first."""
    title = f"leadml monitor: {_verdict(result)[0].lower()}"
    body = "\n".join(
        [
            f"<h1>Lead scoring monitor</h1>{_banner(result)}",
            _actions(result),
            _model_period(result),
            _readiness(result),
            _discrimination(result.get("discrimination")),
            _calibration(result.get("calibration")),
            _band_shares(result.get("score_drift")),
            _drift(result.get("drift")),
        ]
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{_e(title)}</title><style>{STYLE}</style></head><body>
{body}
</body></html>"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}%}"


def _num(v: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if v is None else fmt.format(v)


def _count(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def _interval(low: float | None, high: float | None, fmt: Callable[[float | None], str]) -> str:
    return "-" if low is None or high is None else f"{fmt(low)} to {fmt(high)}"


def _missing(text: str) -> str:
    return f'<p class="missing">{_e(text)}</p>'


def _table(
    table_id: str, headers: Sequence[str], rows: Iterable[Sequence[str]], status: Sequence[str] = ()
) -> str:
    """An HTML table; cells are escaped here. `status` marks rows warn/alert (CSS class)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    lines = []
    for i, row in enumerate(rows):
        cls = f' class="{_e(status[i])}"' if i < len(status) and status[i] != "ok" else ""
        lines.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'


def _status(s: str | None) -> str:
    return STATUS_MARK.get(s or "", s or "-")


def _verdict(result: dict) -> tuple[str, str, str]:
    return VERDICTS.get(result.get("verdict", ""), (str(result.get("verdict")), "#5f6368", ""))


def _banner(result: dict) -> str:
    word, colour, meaning = _verdict(result)
    return (
        f'<div class="banner" style="border-color:{colour};background:{colour}1a">'
        f'<strong style="color:{colour}">{_e(word)}</strong> &mdash; {_e(meaning)}</div>'
    )


def _actions(result: dict) -> str:
    def bullets(items: list[str], none: str) -> str:
        if not items:
            return _missing(none)
        return "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in items) + "</ul>"

    return (
        "<h2>Reasons</h2>"
        + bullets(result.get("reasons") or [], "Nothing to report: every check passed.")
        + "<h2>Actions</h2>"
        + bullets(result.get("actions") or [], "No action needed.")
    )


def _model_period(result: dict) -> str:
    model, period = result.get("model") or {}, result.get("period") or {}
    counts = result.get("counts") or {}
    rows = [
        ("Model", f"{model.get('name') or '-'} version {model.get('version') or '-'}"),
        ("Trained at", model.get("trained_at") or "-"),
        ("Horizon", f"{model.get('horizon_days', '-')} days to convert"),
        ("Scores from", period.get("since") or "-"),
        ("Scores until", period.get("until") or "-"),
        ("Report made at", result.get("created_at") or "-"),
    ]
    labels = {
        "scores": "Scores kept",
        "leads": "Leads scored",
        "matured": "Leads whose horizon has passed",
        "no_outcome": "Leads with no outcome in the data",
        "converted_before": "Leads that had converted before their score",
    }
    rows += [(labels.get(k, k), _count(v)) for k, v in counts.items()]
    return "<h2>Model and period</h2>" + _table("model", ("what", "value"), rows)


def _readiness(result: dict) -> str:
    r = result.get("readiness")
    if not r:
        return "<h2>Readiness</h2>" + _missing("Readiness was not checked.")
    word = "ready to judge" if r.get("ready") else "not ready to judge"
    return f"<h2>Readiness</h2><p><strong>{_e(word)}</strong>: {_e(r.get('reason', ''))}.</p>"


def _discrimination(d: dict | None) -> str:
    head = "<h2>Discrimination (AUC)</h2>"
    if not d:
        return head + _missing(
            "Not measured: no outcomes to compare the scores with for this period."
        )
    text = (
        "<p>How well the scores put converters above the rest (0.5 is chance, 1 is perfect). "
        "The interval is the range the true value is likely in; expected is the model's AUC on "
        "its test leads at training time.</p>"
    )
    rows = [
        (
            _num(d.get("auc")),
            _interval(d.get("low"), d.get("high"), _num),
            _num(d.get("expected")),
            _status(d.get("status")),
        )
    ]
    return (
        head
        + text
        + _table(
            "discrimination",
            ("AUC now", "interval", "expected", "status"),
            rows,
            [d.get("status") or "ok"],
        )
    )


def _calibration_rows(items: list[dict], key: str) -> tuple[list[list[str]], list[str]]:
    rows = [
        [
            str(c.get(key, "-")),
            _count(c.get("leads")),
            _pct(c.get("predicted")),
            _pct(c.get("observed")),
            _interval(c.get("low"), c.get("high"), _pct),
            _pct(c.get("expected")),
            _status(c.get("status")),
        ]
        for c in items
    ]
    return rows, [c.get("status") or "ok" for c in items]


def _calibration(cal: dict | None) -> str:
    head = "<h2>Calibration: do the bands convert as promised?</h2>"
    if not cal or not cal.get("bands"):
        return head + _missing("Not measured: no matured outcomes for this period.")
    headers = ("band", "leads", "predicted", "observed", "interval", "expected", "status")
    rows, status = _calibration_rows(cal["bands"], "band")
    parts = [
        head,
        "<p>Per band: the conversion the model predicted, the conversion observed (with its "
        "interval) and the conversion the same band had on the test leads at training time.</p>",
        _table("calibration", headers, rows, status),
        _img(
            _plot(plot_reliability, cal["bands"]),
            "reliability per band: observed conversion "
            "with its interval against predicted conversion, test-slice rate marked",
        ),
    ]
    if cal.get("grid"):
        rows, status = _calibration_rows(cal["grid"], "cell")
        parts += ["<h3>Per grid cell</h3>", _table("grid", ("cell", *headers[1:]), rows, status)]
    return "\n".join(parts)


def _band_shares(sd: dict | None) -> str:
    head = "<h2>Band shares over time</h2>"
    if not sd or not (sd.get("bands") or sd.get("weekly")):
        return head + _missing("No kept scores in this period to count bands from.")
    parts = [head]
    if sd.get("weekly"):
        parts.append(
            _img(_plot(plot_band_shares, sd["weekly"]), "share of leads per band, week by week")
        )
    if sd.get("bands"):
        rows = [
            (b["band"], _pct(b.get("share")), _pct(b.get("expected")), _status(b.get("status")))
            for b in sd["bands"]
        ]
        parts.append(
            "<p>Share of scored leads in each band now, and on the test leads at training time.</p>"
            + _table(
                "band_shares",
                ("band", "share now", "expected", "status"),
                rows,
                [b.get("status") or "ok" for b in sd["bands"]],
            )
        )
    return "\n".join(parts)


def _drift(drift: dict | None) -> str:
    head = "<h2>Input drift: do new leads look like the training leads?</h2>"
    if not drift or not drift.get("features"):
        return head + _missing("Not measured: no training profile or no leads to compare.")
    order = {"alert": 0, "warn": 1}  # drifted fields first, the most moved on top
    features = sorted(
        drift["features"], key=lambda f: (order.get(f.get("status") or "", 2), -(f.get("psi") or 0))
    )
    drifted = drift.get("drifted") or []
    t = drift.get("thresholds") or {}
    summary = (
        f"<p>{len(drifted)} of {len(features)} fields drifted"
        + (f": {_e(', '.join(drifted))}" if drifted else "")
        + f" (compared on {_count(drift.get('sampled'))} leads). PSI (population stability "
        f"index) measures how much a field's distribution moved: below {_num(t.get('psi_warn'), '{:g}')} "
        f"is stable, above {_num(t.get('psi_alert'), '{:g}')} is a large shift.</p>"
    )
    rows = [
        (
            f.get("feature", "-"),
            f.get("label", "-"),
            f.get("kind", "-"),
            _num(f.get("psi")),
            _pct(f.get("missing_then")),
            _pct(f.get("missing_now")),
            _pct(f.get("new_share")),
            _status(f.get("status")),
            f.get("reason") or "",
        )
        for f in features
    ]
    headers = (
        "feature",
        "label",
        "kind",
        "PSI",
        "missing then",
        "missing now",
        "new categories",
        "status",
        "reason",
    )
    return "\n".join(
        [
            head,
            summary,
            _img(
                _plot(plot_drift, drift),
                "drift per field: PSI for the most moved fields, with the warning and alert lines",
            ),
            _table("drift", headers, rows, [f.get("status") or "ok" for f in features]),
        ]
    )


def _plot(draw: Callable[[Any], Any], data: Any) -> str:
    """A figure drawn by `draw(data)` as base64 PNG (no pyplot: nothing global is touched)."""
    fig = draw(data)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _img(png: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{png}">'


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def plot_reliability(bands: list[dict]):
    """Observed conversion per band (interval bars) against predicted; the diagonal is a
    perfectly calibrated band, the cross the band's rate on the training test slice."""
    fig, ax = _figure(5.5, 4.5)
    top = 0.0
    for b in bands:
        p, o = b.get("predicted"), b.get("observed")
        if p is None or o is None:
            continue
        lo, hi = b.get("low"), b.get("high")
        yerr = [[o - lo], [hi - o]] if lo is not None and hi is not None else None
        ax.errorbar([p], [o], yerr=yerr, fmt="o", capsize=4, color="tab:blue")
        ax.annotate(str(b["band"]), (p, o), textcoords="offset points", xytext=(6, 4))
        if b.get("expected") is not None:
            ax.plot([p], [b["expected"]], "x", color="tab:red", markersize=9)
        top = max(top, p, o, hi or 0, b.get("expected") or 0)
    top = min(1.0, top * 1.1 + 0.02)
    ax.plot([0, top], [0, top], ":", color="grey", label="predicted = observed")
    ax.plot([], [], "o", color="tab:blue", label="observed (interval)")
    ax.plot([], [], "x", color="tab:red", label="expected (test leads)")
    ax.set(
        xlim=(0, top),
        ylim=(0, top),
        xlabel="predicted conversion",
        ylabel="observed conversion",
        title="Reliability per band",
    )
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_band_shares(weekly: list[dict]):
    """Weekly stacked bars of each band's share of the leads scored that week."""
    fig, ax = _figure(7, 3.8)
    seen = {band for w in weekly for band in w.get("shares", {})}
    bands = [b for b in BANDS if b in seen] + sorted(seen - set(BANDS))
    weeks = [str(w["week"]) for w in weekly]
    bottom = [0.0] * len(weekly)
    hatches = ("", "//", "..", "xx")  # bands stay apart in grey print too
    for i, band in enumerate(bands):
        share = [w.get("shares", {}).get(band) or 0.0 for w in weekly]
        ax.bar(
            weeks,
            share,
            bottom=bottom,
            label=band,
            hatch=hatches[i % len(hatches)],
            edgecolor="white",
        )
        bottom = [a + b for a, b in zip(bottom, share, strict=True)]
    ax.set(ylabel="share of leads scored", title="Band shares per week", ylim=(0, 1))
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    return fig


def plot_drift(drift: dict):
    """Horizontal PSI bars for the most moved fields, drifted ones coloured, with the
    warning and alert lines; a field without a PSI is left to the table."""
    features = [f for f in drift["features"] if f.get("psi") is not None]
    features = sorted(features, key=lambda f: -f["psi"])[:TOP_FEATURES][::-1]
    fig, ax = _figure(7, max(2.0, 0.3 * len(features) + 1.2))
    colours = {"warn": "tab:orange", "alert": "tab:red"}
    ax.barh(
        [f.get("label") or f["feature"] for f in features],
        [f["psi"] for f in features],
        color=[colours.get(f.get("status") or "", "tab:grey") for f in features],
        hatch=["//" if f.get("status") == "alert" else "" for f in features],
    )
    t = drift.get("thresholds") or {}
    for key, colour, label in (
        ("psi_warn", "tab:orange", "warning"),
        ("psi_alert", "tab:red", "alert"),
    ):
        if t.get(key) is not None:
            ax.axvline(t[key], color=colour, linestyle="--", label=f"{label} ({t[key]:g})")
    ax.set(xlabel="PSI (how far the field moved)", title="Input drift per field")
    if t:
        ax.legend(fontsize=8, loc="lower right")
    return fig
