"""The points ledger for people: a terminal table, charts, and the report folder.

`write_report` writes what `ledger.compare` found as a CSV per table, the suggested rules
file and one HTML page with the gains and points charts embedded (no files beside it, no
internet needed to open it); `plot_gains` and `plot_points` draw the same charts in a
notebook, `rule_display` is the per-rule table as a marketer reads it.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from leadml import files
from leadml.ledger import Ledger


def terminal_table(ledger: Ledger) -> str:
    t = ledger.per_rule
    lines = [
        f"{'rule':32} {'cover':>6} {'conv+':>6} {'conv-':>6} {'manual':>7} {'learned':>8} {'model':>6}  verdict"
    ]
    for r in t.itertuples():
        lines.append(
            f"{r.rule[:32]:32} {r.coverage:6.1%} {r.conversion_when_fires:6.1%} {r.conversion_otherwise:6.1%} "
            f"{r.manual_points:7.0f} {r.learned_points:8.1f} {r.model_points:6.1f}  {r.verdict}"
        )
    lines.append("")
    for r in ledger.overall.itertuples():
        lines.append(f"{r.scorer:16} ROC AUC {r.roc_auc:.4f}  log loss {r.log_loss:.4f}")
    if len(ledger.halves):
        lines += [
            "",
            "points per half, test leads: average, and spread (sd: the weight a half carries)",
            f"{'half':11} {'rules':>5} {'manual':>7} {'learned':>8} {'spread manual/learned/model':>28}"
            "  AUC manual / model",
        ]
        for r in ledger.halves.itertuples():
            spread = f"{r.manual_spread:.1f} / {r.learned_spread:.1f} / {r.model_spread:.1f}"
            lines.append(
                f"{r.half:11} {r.rules:5d} {r.manual_points:7.1f} {r.learned_points:8.1f} "
                f"{spread:>28}  {r.manual_auc:.3f} / {r.model_auc:.3f}"
            )
    return "\n".join(lines)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plot_gains(ledger: Ledger):
    """Gains curve: share of conversions found when contacting leads best-first, per ranking."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    g = ledger.gains
    for col in ("leadml model", "refitted rules", "manual points"):
        ax.plot(g["share_of_leads"], g[col], label=col)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    ax.set(
        xlabel="share of leads contacted, best first",
        ylabel="share of conversions found",
        title="Gains: who finds the converters first",
    )
    ax.legend()
    plt.close(fig)  # shown once where returned (a notebook cell), not again by pyplot
    return fig


def plot_points(ledger: Ledger):
    """The marketer's points against the learned points, per rule, coloured by verdict."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    t = ledger.per_rule
    colours = {
        "under-weighted": "tab:green",
        "over-weighted": "tab:red",
        "about right": "tab:blue",
        "no evidence": "tab:grey",
    }
    for v, part in t.groupby("verdict"):
        ax.errorbar(
            part["manual_points"],
            part["learned_points"],
            yerr=[
                part["learned_points"] - part["learned_low"],
                part["learned_high"] - part["learned_points"],
            ],
            fmt="o",
            color=colours.get(v, "black"),
            label=v,
        )
    lo = min(t["manual_points"].min(), t["learned_low"].min()) - 2
    hi = max(t["manual_points"].max(), t["learned_high"].max()) + 2
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":")
    ax.set(xlabel="marketer's points", ylabel="learned points", title="Points per rule")
    ax.legend(fontsize=8)
    plt.close(fig)  # shown once where returned (a notebook cell), not again by pyplot
    return fig


def _charts(ledger: Ledger) -> tuple[str, str]:
    out = []
    for plot in (plot_gains, plot_points):
        out.append(_png(plot(ledger)))
    return out[0], out[1]


def rule_display(per_rule: pd.DataFrame) -> pd.DataFrame:
    """The per-rule table as a marketer reads it (the CSV keeps every column)."""

    def condition(r) -> str:
        v = r.value if not isinstance(r.value, list) else ", ".join(map(str, r.value))
        return f"{r.field} {r.op} {v}"

    return pd.DataFrame(
        {
            "rule": per_rule["rule"],
            "condition": [condition(r) for r in per_rule.itertuples()],
            "coverage": per_rule["coverage"],
            "conversion when it fires": per_rule["conversion_when_fires"],
            "conversion otherwise": per_rule["conversion_otherwise"],
            "your points": per_rule["manual_points"],
            "learned points": [
                f"{r.learned_points:.1f} ({r.learned_low:.1f} to {r.learned_high:.1f})"
                for r in per_rule.itertuples()
            ],
            "model points": per_rule["model_points"],
            "verdict": per_rule["verdict"],
        }
    )


def _html_table(frame: pd.DataFrame, cls: str) -> str:
    percent = (
        "coverage",
        "conversion when it fires",
        "conversion otherwise",
        "share",
        "conversion",
    )
    fmt = {c: "{:.1%}".format for c in percent}
    fmt |= {c: "{:.1f}".format for c in ("model points", "manual_points")}
    fmt |= {c: "{:.0f}".format for c in ("your points",)}
    fmt |= {c: "{:.4f}".format for c in ("roc_auc", "log_loss")}
    return frame.to_html(
        index=False, classes=cls, formatters=fmt, na_rep="-", escape=True, border=0
    )


def render_html(ledger: Ledger, title: str) -> str:
    gains, points = _charts(ledger)
    style = (
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}"
        "table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
        "td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}"
        "img{max-width:48%;margin-right:1%}"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{style}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Rules from <code>{html.escape(ledger.ruleset.path)}</code>: MQL at {ledger.ruleset.mql:g} points,
SQL at {ledger.ruleset.sql:g}. Learned points come from {ledger.fit_leads:,} older leads; every figure
below is measured on {ledger.test_leads:,} later test leads.</p>
<h2>Overall</h2>{_html_table(ledger.overall, "overall")}
<h2>Fit and engagement</h2>
<p>Most point systems have two halves: who the lead is (fit: title, company, industry, region,
source) and what the lead did (engagement: visits, downloads, demos, product use). Per half, on
the test leads: your rules' average points and the same rules refitted on outcomes; the spread
(standard deviation) of each half's points, yours, refitted and the model's own, which is how much
weight that half carries; and how well each ranks leads alone (AUC; the model's from its fit or
engagement sub-model).</p>
{_html_table(ledger.halves, "halves")}
<img alt="gains curve" src="data:image/png;base64,{gains}"><img alt="points per rule" src="data:image/png;base64,{points}">
<h2>Rule by rule</h2>
<p>learned points: the rule's weight when all rules are refitted on outcomes, on your point scale, with a
90 % interval; model points: the leadml model's own average contribution of that field, in score points, for
the leads where the rule fires (for activities: the activity itself, not the overall-engagement summaries).</p>
{_html_table(rule_display(ledger.per_rule), "rules")}
<h2>Bands</h2>{_html_table(ledger.bands, "bands")}
<h2>Where manual points and the model disagree most</h2>{_html_table(ledger.disagreements, "disagreements")}
<h2>Suggested rules file</h2><pre>{html.escape(ledger.suggested)}</pre>
</body></html>"""


def write_report(
    ledger: Ledger, out_dir: Path | str, title: str = "leadml points ledger"
) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out / "ledger.csv",
        "html": out / "ledger.html",
        "rules": out / "suggested_rules.yaml",
        "disagreements": out / "disagreements.csv",
    }
    files.write_frame(ledger.per_rule, paths["csv"])
    paths["halves"] = out / "halves.csv"
    files.write_frame(ledger.halves, paths["halves"])
    files.write_frame(ledger.disagreements, paths["disagreements"])
    files.write_text(paths["rules"], ledger.suggested)
    files.write_text(paths["html"], render_html(ledger, title))
    return paths
