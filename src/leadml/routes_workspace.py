"""The marketer's workspace: pages served by `leadml serve` itself, offline.

Server-rendered Jinja2 templates (`templates/workspace/`), one stylesheet and a little plain
JavaScript from `static/`, nothing from a CDN. Every page goes through `render`, which
checks the visitor (`workspace_auth.visitor`: the service's API-key rule) and hands the
template the visitor and the CSRF token its forms echo. Pages: overview, rules, bands and
lead lookup (each adds its route here); login and logout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadml.deps import Serve
from leadml.workspace_auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    FormRefused,
    LoginRequired,
    Visitor,
    check_csrf,
    check_origin,
    key_role,
    login_url,
    session_token,
    visitor,
)

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
PAGES = (  # the navigation, in order: (path, label)
    ("/workspace/overview", "Overview"),
    ("/workspace/rules", "Rules"),
    ("/workspace/bands", "Bands"),
    ("/workspace/lead", "Lead lookup"),
)

router = APIRouter(prefix="/workspace", include_in_schema=False)


def templates(request: Request):
    """The app's Jinja2 environment (made once by `install`, kept on app.state)."""
    return request.app.state.templates


def render(
    request: Request,
    template: str,
    who: Visitor,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A workspace page: the template with the visitor, the CSRF token and the navigation;
    the CSRF cookie is set when the browser has none yet."""
    response = templates(request).TemplateResponse(
        request,
        template,
        {"who": who, "csrf_field": CSRF_FIELD, "csrf": who.csrf, "pages": PAGES} | context,
        status_code=status,
    )
    if request.cookies.get(CSRF_COOKIE) != who.csrf:
        response.set_cookie(CSRF_COOKIE, who.csrf, httponly=True, samesite="strict")
    return response


async def checked_form(request: Request) -> dict[str, Any]:
    """A POSTed form from one of our pages: same origin and the CSRF token echoed."""
    check_origin(request)
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    return dict(form)


def page_visitor(request: Request, serve: Serve) -> Visitor:
    return visitor(request, serve)


@router.get("")
async def home() -> RedirectResponse:
    return RedirectResponse("/workspace/overview", 303)


@router.get("/login")
async def login_page(request: Request, serve: Serve, next: str = "/workspace/overview") -> Response:
    import secrets

    who = Visitor("anonymous", request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24))
    return render(
        request,
        "workspace/login.html",
        who,
        next=_local(next),
        error=None,
        keys=bool(serve.api_key or serve.admin_key),
    )


@router.post("/login")
async def login(
    request: Request,
    serve: Serve,
    key: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/workspace/overview",
) -> Response:
    await checked_form(request)
    role = key_role(key, serve)
    if role is None:
        import secrets

        who = Visitor("anonymous", request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24))
        return render(
            request,
            "workspace/login.html",
            who,
            401,
            next=_local(next),
            error="That key is not the service's API key or admin key.",
            keys=True,
        )
    secret = serve.admin_key if role == "admin" else serve.api_key
    response = RedirectResponse(_local(next), 303)
    assert secret is not None
    response.set_cookie(
        SESSION_COOKIE, session_token(secret, role), httponly=True, samesite="strict"
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await checked_form(request)
    response = RedirectResponse("/workspace/login", 303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _local(path: str) -> str:
    """Only a path of this site: `next` is never an open redirect."""
    return path if path.startswith("/") and not path.startswith("//") else "/workspace/overview"


def install(app) -> None:
    """The workspace on an app: its templates, its static files, the login redirect."""
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates

    app.state.templates = Jinja2Templates(directory=str(TEMPLATES))
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(router)

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        if request.headers.get("accept", "").startswith("application/json"):
            return Response(
                '{"error": "missing or wrong API key"}', 401, media_type="application/json"
            )
        return RedirectResponse(login_url(exc.next_path), 303)


# ---- overview ----


@router.get("/overview")
async def overview(request: Request, serve: Serve) -> Response:
    """The champion in plain words, its bands, charts and grid, the monitor's verdict."""
    from leadml import workspace_overview
    from leadml.metrics import monitor_latest

    who = page_visitor(request, serve)
    model = request.app.state.holder.model
    if model is None:
        return render(request, "workspace/overview.html", who, 503, model=None)
    monitor = workspace_overview.read_monitor(monitor_latest(request.app.state.settings.home))
    v = workspace_overview.view(model.card(), model.scorer.card, monitor)
    return render(request, "workspace/overview.html", who, model=model, v=v, monitor=monitor)


@router.get("/monitor-report")
async def monitor_report(request: Request, serve: Serve) -> Response:
    """The monitor's last report (`leadml monitor` writes <home>/monitor/latest.html)."""
    from leadml.metrics import monitor_latest

    page_visitor(request, serve)
    report = monitor_latest(request.app.state.settings.home).with_suffix(".html")
    if not report.exists():
        return HTMLResponse(
            "<p>No monitor report yet: run <code>leadml monitor</code>.</p>", status_code=404
        )
    return HTMLResponse(report.read_text())


# ---- lead ----


@router.get("/lead")
async def lead_page(request: Request, serve: Serve, lead_id: str = "") -> Response:
    """Lead lookup: the latest score in words, the history chart, what changed."""
    from leadml import workspace_lead
    from leadml.errors import LeadmlError
    from leadml.routes_leads import read_scores

    who = page_visitor(request, serve)
    lead_id = lead_id.strip()
    if not lead_id:
        return render(request, "workspace/lead.html", who, lead_id="", lead=None, problem=None)
    try:
        entries = await read_scores(request, lead_id, workspace_lead.LIMIT)
    except LeadmlError as exc:
        status = int(getattr(exc, "status", 400))
        problem, hint = str(exc), None
        if status == 404 and "store is off" not in problem:
            problem = f"No score kept for lead {lead_id}."
            hint = (
                "Check the id (as your CRM spells it); a lead is found once it was scored with "
                "an id by /predict or `leadml score`, and until its scores are pruned "
                "(LEADML_STORE_RETENTION_DAYS)."
            )
        return render(
            request,
            "workspace/lead.html",
            who,
            status,
            lead_id=lead_id,
            lead=None,
            problem=problem,
            hint=hint,
        )
    model = request.app.state.holder.model  # its band lines on the chart (none: no lines)
    lines = {} if model is None else model.card()["thresholds"]
    lead = workspace_lead.describe(lead_id, entries, lines)
    return render(request, "workspace/lead.html", who, lead_id=lead_id, lead=lead, problem=None)
    holder = request.app.state.holder
    model = holder.model
    return render(request, "workspace/overview.html", who, model=model)


# ---- rules ----


@router.get("/rules")
async def rules_page(request: Request, serve: Serve) -> Response:
    """The upload form and the editor, prefilled with the sample rules."""
    who = page_visitor(request, serve)
    from leadml import workspace_rules

    return _rules_page(request, who, workspace_rules.sample_rules())


@router.post("/rules")
async def rules_compare(request: Request, serve: Serve) -> Response:
    """A rules file (uploaded, or typed in the editor) against the served model."""
    from starlette.concurrency import run_in_threadpool

    from leadml import workspace_rules
    from leadml.errors import RulesError

    who = page_visitor(request, serve)
    form = await checked_form(request)
    upload, typed = form.get("rules_file"), str(form.get("rules_text") or "")
    model = request.app.state.holder.model
    text = typed
    try:
        if upload is not None and not isinstance(upload, str) and upload.filename:
            name = Path(upload.filename).name or "uploaded file"
            raw = await upload.read(workspace_rules.MAX_BYTES + 1)
            text = workspace_rules.rules_text(raw, name)
        else:
            name = "the editor"
            text = workspace_rules.rules_text(typed.encode(), name)
        if model is None:
            return _rules_page(request, who, text, 503, error="No model is loaded yet.")
        cache = _rules_cache(request)
        key = f"{model.fingerprint}:{model.version}"
        result = await run_in_threadpool(
            workspace_rules.compare, text, name, key, model.scorer, cache
        )
    except RulesError as exc:
        return _rules_page(request, who, text, 422, error=str(exc))
    return _rules_page(request, who, text, result=result)


@router.get("/rules/suggested/{key}.yaml")
async def rules_suggested(request: Request, serve: Serve, key: str) -> Response:
    """The suggested rules file of a comparison made on this page (the rules with the
    model's points), as `leadml rules compare` writes it."""
    page_visitor(request, serve)
    result = _rules_cache(request).get(key)
    if result is None or result.suggested is None:
        return Response(
            "That comparison is no longer kept: compare the rules again on /workspace/rules.\n",
            404,
            media_type="text/plain",
        )
    return Response(
        result.suggested,
        media_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="suggested_rules.yaml"'},
    )


def _rules_cache(request: Request):
    from collections import OrderedDict

    state = request.app.state
    if getattr(state, "rules_compared", None) is None:
        state.rules_compared = OrderedDict()
    return state.rules_compared


def _rules_page(
    request: Request, who: Visitor, text: str, status: int = 200, **context: Any
) -> HTMLResponse:
    from leadml import workspace_rules

    return render(
        request,
        "workspace/rules.html",
        who,
        status,
        model=request.app.state.holder.model,
        text=text,
        max_kb=workspace_rules.MAX_BYTES // 1000,
        **({"result": None, "error": None} | context),
    )


# ---- bands ----


def _number(value: str | None, default: float | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


@router.get("/bands")
async def bands_page(request: Request, serve: Serve) -> Response:
    """The policy explorer: lines set by hand, by top N per week or by minimum precision,
    recounted on the test leads; today's lines beside them."""
    from leadml import workspace_bands as wb

    who = page_visitor(request, serve)
    model = request.app.state.holder.model
    if model is None:
        return render(request, "workspace/bands.html", who, 503, model=None)
    card = model.scorer.card
    bt = wb.Backtest.from_card(card)
    now = model.scorer.thresholds
    q = request.query_params
    policy = q.get("policy", "lines")
    volume = _number(q.get("volume"), wb.weekly_volume(card))
    mql, sql = _number(q.get("mql"), now.mql), _number(q.get("sql"), now.sql)
    assert mql is not None and sql is not None
    problem = None
    if bt is not None and policy == "top_n":
        n = _number(q.get("n"), 20.0)
        if volume:
            sql = wb.top_n_line(bt, volume, n or 0.0)
        else:
            problem = "Type your weekly lead volume for a top-N line."
    elif bt is not None and policy == "precision":
        rate = _number(q.get("rate"), 50.0)
        found = wb.precision_line(bt, (rate or 0.0) / 100)
        if found is None:
            problem = f"No SQL line reached {rate:g}% conversion on the test leads."
        else:
            sql = found
    if not (0 < mql < sql < 1):
        problem = problem or f"The lines must be 0 < MQL < SQL < 1; got MQL {mql:g}, SQL {sql:g}."
    tables = None
    if bt is not None and problem is None:
        tables = {
            "now": wb.table(bt, now.mql, now.sql, volume),
            "new": wb.table(bt, mql, sql, volume),
        }
    return render(
        request,
        "workspace/bands.html",
        who,
        422 if problem else 200,
        model=model,
        bt=bt,
        now=now,
        mql=mql,
        sql=sql,
        policy=policy,
        volume=volume,
        tables=tables,
        problem=problem,
        n=q.get("n", "20"),
        rate=q.get("rate", "50"),
        saved=q.get("saved"),
        saved_lines=card.get("saved_lines"),
    )


@router.post("/bands")
async def bands_save(request: Request, serve: Serve) -> Response:
    """Save the lines (admin key only): bands.json beside the champion export, applied by
    this worker now and by the others at their next reload; tagged in MLflow."""
    from starlette.concurrency import run_in_threadpool

    from leadml import workspace_bands as wb

    who = page_visitor(request, serve)
    form = await checked_form(request)
    if not who.admin:
        raise FormRefused(
            "saving band lines needs the admin key (LEADML_ADMIN_KEY): log in with it"
        )
    holder = request.app.state.holder
    model = holder.model
    if model is None:
        raise FormRefused("no model is loaded: nothing to save lines for")
    sql, mql = _number(form.get("sql"), None), _number(form.get("mql"), None)
    if sql is None or mql is None:
        raise FormRefused("send both lines, sql and mql, as chances between 0 and 1")
    policy = str(form.get("policy") or "saved")[:40]
    settings, path = request.app.state.settings, holder.source.lines_path()

    def write() -> tuple[Path, str]:
        return wb.save(settings, path, model.name, model.version, sql, mql, policy)

    _, recorded = await run_in_threadpool(write)
    await holder.load()  # this worker at once; siblings through the reload token
    holder.announce()
    return RedirectResponse(f"/workspace/bands?saved={quote(recorded)}", 303)
