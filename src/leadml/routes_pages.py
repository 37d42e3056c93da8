"""Pages for people: the model card as a web page for marketers, and the front page.

Plain HTML made here from the model card: the service imports nothing of the ledger's
training-side comparison (which needs train, rules and matplotlib) to show it.
"""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from leadml.deps import Model, error_responses

router = APIRouter()


@router.get(
    "/ledger", response_class=HTMLResponse, tags=["operations"], responses=error_responses(503)
)
async def ledger_page(model: Model) -> HTMLResponse:
    """For marketers: the model card and the band table as a web page."""
    return HTMLResponse(model_page(model.card()))


VENDOR = "/static/vendor"  # routes_workspace.install mounts src/leadml/static at /static


@router.get("/docs", include_in_schema=False)
async def swagger_ui() -> HTMLResponse:
    """Swagger UI from the vendored files (static/vendor/README.md): nothing from a CDN, so
    the page works with the network off."""
    from fastapi.openapi.docs import get_swagger_ui_html

    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="leadml scoring service: API docs",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/favicon-32x32.png",
    )


@router.get("/redoc", include_in_schema=False)
async def redoc() -> HTMLResponse:
    """ReDoc from the vendored file, without Google's fonts: offline too."""
    from fastapi.openapi.docs import get_redoc_html

    return get_redoc_html(
        openapi_url="/openapi.json",
        title="leadml scoring service: API reference",
        redoc_js_url=f"{VENDOR}/redoc.standalone.js",
        redoc_favicon_url=f"{VENDOR}/favicon-32x32.png",
        with_google_fonts=False,
    )


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(
        '<p>leadml scoring service: <a href="/workspace">the workspace</a>, '
        '<a href="/docs">API docs</a>, <a href="/redoc">API reference</a></p>'
    )


def model_page(card: dict) -> str:
    """The /ledger page: the model card and its band table, for people, no tools."""
    metrics = card.get("metrics", {})
    rows = [
        ("ROC AUC", metrics.get("roc_auc"), "{:.4f}"),
        ("Expected calibration error", metrics.get("ece"), "{:.4f}"),
        ("Log loss", metrics.get("log_loss"), "{:.4f}"),
        ("Test leads", metrics.get("leads"), "{:,.0f}"),
        ("Conversion in the test leads", metrics.get("conversion_rate"), "{:.1%}"),
    ]
    metric_rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{fmt.format(v) if v is not None else '-'}</td></tr>"
        for name, v, fmt in rows
    )
    t = card.get("thresholds", {})
    band_rows = "".join(
        f"<tr><td>{html.escape(str(b['band']))}</td><td>{b['leads']:,}</td><td>{b['share']:.1%}</td>"
        f"<td>{b['predicted']:.1%}</td><td>{b['observed']:.1%}</td><td>{b['lift']:.2f}</td></tr>"
        for b in card.get("band_backtest", [])
    )
    data = card.get("data", {})
    style = (
        "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{padding:.3rem .8rem;"
        "border-bottom:1px solid #ddd;text-align:left}"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>leadml: {html.escape(card["name"])} v{html.escape(card["version"])}</title>
<style>{style}</style></head><body>
<h1>Lead scoring model {html.escape(card["name"])}, version {html.escape(card["version"])}</h1>
<p>Trained {html.escape(str(card.get("trained_at") or "-"))} on {data.get("leads", data.get("rows", 0)):,} leads
from {html.escape(str(data.get("path", "")))}. A lead's score is its chance of converting within
{card.get("horizon_days") or "-"} days, in percent.</p>
<h2>How good it is (later test leads)</h2><table id="metrics">{metric_rows}</table>
<h2>Bands</h2>
<p>SQL from a {t.get("sql", 0):.0%} chance, MQL from {t.get("mql", 0):.0%} ({html.escape(str(t.get("policy", "")))} policy).
Backtest on the test leads: how many fell in each band and how many of them converted.</p>
<table id="bands"><thead><tr><th>band</th><th>leads</th><th>share</th><th>predicted conversion</th>
<th>observed conversion</th><th>lift</th></tr></thead><tbody>{band_rows}</tbody></table>
{grades_section(card.get("grades"))}
<p>Compare your point rules with this model: <code>leadml rules compare --rules your_rules.yaml</code>.</p>
</body></html>"""


def grades_section(grades: dict | None) -> str:
    """What each word next to the score means, the grid's backtest, and what is missing."""
    if not grades:
        return "<p>This model was trained before grades existed: retrain it for fit, engagement, grid, temperature, stage and PQL.</p>"
    meaning = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in grades.get("meaning", {}).items()
    )
    backtest = grades.get("backtest", {})
    grid = {(c["fit"], c["engagement"]): c for c in backtest.get("grid", [])}
    numbers = sorted({e for _, e in grid})
    head = "".join(f"<th>engagement {html.escape(e)}</th>" for e in numbers)

    def cell(c: dict | None) -> str:
        if not c or not c.get("leads"):
            return "<td>-</td>"
        return f"<td>{c['conversion']:.0%} of {int(c['leads']):,}</td>"

    rows = "".join(
        f"<tr><th>fit {html.escape(f)}</th>{''.join(cell(grid.get((f, e))) for e in numbers)}</tr>"
        for f in sorted({f for f, _ in grid})
    )
    groups = "".join(
        f"<tr><th>{html.escape(str(g['group']))}</th><td>{int(g['leads']):,}</td>"
        f"<td>{'-' if g['conversion'] is None else format(g['conversion'], '.0%')}</td></tr>"
        for name in ("temperature", "stage", "pql")
        for g in backtest.get(name, [])
        if g.get("leads")
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in grades.get("notes", {}).values())
    grid_table = (
        f'<table id="grid"><thead><tr><th></th>{head}</tr></thead><tbody>{rows}</tbody></table>'
        if rows
        else ""
    )
    return f"""<h2>Grid, temperature, stage and PQL</h2>
<table id="meaning">{meaning}</table>
<p>How the test leads converted in each grid cell (conversion of the cell's leads):</p>{grid_table}
<table id="groups"><thead><tr><th>group</th><th>leads</th><th>conversion</th></tr></thead><tbody>{groups}</tbody></table>
{f"<ul>{notes}</ul>" if notes else ""}"""
