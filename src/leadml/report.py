"""What train, score and rules compare print on the terminal: rows read, used and rejected per
table, and the training report (metrics against the baseline, the band backtest, MLflow)."""

from __future__ import annotations

from typing import Any


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def print_input(tables: dict, notes: list[str], rejects_path) -> None:
    """Rows in = used + rejected, per input table; how the files were read; the rejects file."""
    from leadml.accounting import TableCount

    for i, (table, c) in enumerate(tables.items()):
        count = c if isinstance(c, TableCount) else TableCount.from_dict(table, c)
        print(("input: " if i == 0 else "       ") + count.line())
    for note in notes:
        print(f"       {note}")
    if rejects_path is not None:
        print(f"       rejects: {rejects_path}")


def print_train_report(result: Any, settings: Any) -> None:
    """Metrics against the baseline and the best possible model, bands, where the model went."""
    m, b, o = result.metrics, result.baseline or {}, result.bayes or {}
    d = result.data_summary
    print()
    print(
        f"data: {d['kind']} {d['path']} | {d['rows']:,} training rows, conversion {d['conversion_rate']:.1%}, split {d['split']}"
    )
    if d.get("cutoffs"):
        print(
            f"      cut-offs {d['cutoffs'][-1]} .. {d['cutoffs'][0]}, horizon {d['horizon_days']} days"
        )
    print_input(d.get("tables", {}), d.get("read_notes", []), result.rejects_path)
    print(f"test slice: {m['leads']:,} leads")
    print(f"{'metric':<10} {'LightGBM':>10} {'baseline':>10} {'best possible':>14}")
    for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"):
        print(f"{k:<10} {_fmt(m[k]):>10} {_fmt(b.get(k)):>10} {_fmt(o.get(k)):>14}")
    if o:
        print(
            f"  ('best possible' is the Bayes-optimal model using the generator's true probabilities; AUC gap {o['roc_auc'] - m['roc_auc']:+.4f})"
        )
    t = result.thresholds
    print(
        f"\nbands ({t.policy}: SQL at p >= {t.sql:.3f}, MQL at p >= {t.mql:.3f}), backtest on the test slice:"
    )
    print(result.band_table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print_grades(result.grades, (result.scorer.card.get("grades") or {}).get("notes", {}))
    for w in result.warnings:
        print(f"WARNING: {w}")
    if result.run_id:
        print(f"\nMLflow run {result.run_id} in {settings.tracking_uri} (make mlflow-ui)")
        print(
            f"registered {settings.model_name} v{result.version} as challenger; "
            + ("promoted to champion" if result.promoted else "not promoted")
            + f" ({result.promotion_note})"
        )
    if result.export_path:
        print(f"champion exported to {result.export_path}")


def print_grades(tables: dict, notes: dict) -> None:
    """The grid (conversion and leads per cell) and conversion per temperature, stage and PQL
    on the test slice; what the data could not tell, in words."""
    from leadml.grades_backtest import grid_text

    if "grid" in tables:
        print("\nfit x engagement grid, test slice (conversion, leads):")
        print(grid_text(tables["grid"]))
    for name in ("temperature", "stage", "pql"):
        if name in tables:
            t = tables[name]
            cells = ", ".join(
                f"{g} {c:.0%} ({int(n):,})"
                for g, c, n in zip(t["group"], t["conversion"], t["leads"], strict=True)
                if n
            )
            print(f"{name}: {cells}")
    for name, note in notes.items():
        print(f"{name}: {note}")


def print_history(view: Any) -> None:
    """A lead's history (`history.LeadHistory`): one line per score, newest first, the trend,
    and what changed between consecutive scores. A batch score that describes another moment
    than it was made at (`leadml score --as-of`) says which."""
    print(f"lead {view.lead_id}: {len(view.entries)} score(s), newest first")
    print(f"  {'scored at (UTC)':<20} {'score':>5}  {'band':<12}{'grid':<6}{'p':>9}  model")
    for r in view.entries:
        grid = r.grid or "-"
        as_of = (
            f" (as of {r.as_of:%Y-%m-%d %H:%M:%S})" if r.as_of not in (None, r.scored_at) else ""
        )
        print(
            f"  {r.scored_at:%Y-%m-%d %H:%M:%S}  {r.score:>5}  {r.band:<12}{grid:<6}"
            f"{r.probability:>9.4f}  {r.model_name} v{r.model_version}{as_of}"
        )
    print(f"trend: {view.trend} ({view.slope:+g} points per score over the last {view.trend_over})")
    for c in view.changes:
        band = f"{c.band_from} -> {c.band_to}" if c.band_from != c.band_to else c.band_to
        print(
            f"{c.since:%Y-%m-%d %H:%M} -> {c.at:%Y-%m-%d %H:%M}: score {c.score_from} -> {c.score_to}, {band}"
        )
        for what in c.what or ["nothing the store keeps moved"]:
            print(f"    {what}")
