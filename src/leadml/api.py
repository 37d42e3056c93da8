"""The scoring service: the FastAPI app factory, its lifespan and its one error mapping.

`create_app()` reads the environment once (`config.Environment`) into `Settings` and
`ServeSettings`, or takes them, and optionally an already loaded model, from tests. The
model is loaded in the lifespan and held by `serving.ModelHolder`; the routes live in
`routes_predict` (scoring), `routes_leads` (the score store: a lead's latest score and
history), `routes_model` (the card), `routes_admin` (health, readiness, metrics, reload) and
`routes_pages` (HTML), and get what they need through `deps`. Every score is handed to the
score store's `recorder.Recorder` (`StoreSettings`; none when LEADML_STORE_URL=off), whose
writer thread the lifespan starts and, after the last request, flushes and stops.

The request schema is made from the loaded model's feature spec (`schemas.py`), so `/docs`
shows the fields this model reads. Every `LeadmlError` becomes its 4xx (or 503) answer in
one handler; errors never echo input values (they may be personal data) and never reach a
500 for bad input. Nothing here imports training code.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import time
import traceback
from collections.abc import AsyncIterator, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from leadml import (
    routes_admin,
    routes_leads,
    routes_model,
    routes_pages,
    routes_predict,
    routes_workspace,
    schemas,
    webhooks,
)
from leadml.config import Environment, ServeSettings, Settings, StoreSettings
from leadml.errors import LeadmlError
from leadml.metrics import ServiceMetrics, monitor_latest
from leadml.recorder import Recorder
from leadml.serving import LoadedModel, ModelHolder, ModelSource

log = logging.getLogger("leadml.api")
CLIENT_GONE = 499  # the client hung up before the answer (nginx's status for it)


def create_app(
    settings: Settings | None = None,
    serve: ServeSettings | None = None,
    model: LoadedModel | None = None,
    store: StoreSettings | None = None,
) -> FastAPI:
    """The service. Without arguments everything comes from the environment (LEADML_*)."""
    env = Environment() if settings is None or serve is None or store is None else None
    settings = settings or Settings.from_env(env=env)
    serve = serve or ServeSettings.from_env(env)
    store = store or StoreSettings.from_env(settings.home, env)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        holder: ModelHolder = app.state.holder
        if holder.model is None:
            await holder.load()
        _freeze_heap()
        task = asyncio.create_task(holder.poll())
        recorder: Recorder | None = app.state.recorder  # the score store's writer thread
        if recorder is not None:
            recorder.start()
        try:
            async with webhooks.background(store):  # band-change webhooks
                yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.state.batcher.close()
            if recorder is not None:  # after the last score: what is queued is written
                await asyncio.to_thread(recorder.close)
            app.state.metrics.close()

    app = FastAPI(
        title="leadml scoring service",
        version="1",
        description=(
            "Calibrated conversion probability, a 1-99 score, an SQL / MQL / Unqualified band "
            "and the reasons behind the score, for one lead or a batch."
        ),
        lifespan=lifespan,
        docs_url=None,  # routes_pages serves /docs and /redoc from vendored files: offline
        redoc_url=None,
    )
    metrics = ServiceMetrics(
        multiprocess=bool(serve.metrics_dir), monitor_file=monitor_latest(settings.home)
    )

    def swapped(new: LoadedModel, old: LoadedModel | None) -> None:
        app.openapi_schema = None  # /docs follows the new model's fields
        metrics.model_loaded(new, old)
        if old is not None:  # let the old model's objects go, freeze the new ones
            _freeze_heap(refresh=True)

    app.state.settings = settings
    app.state.serve = serve
    app.state.metrics = metrics
    app.state.store_settings = store
    app.state.recorder = _recorder(store, metrics)
    app.state.batcher = routes_predict.make_batcher(
        app.state.recorder.keep if app.state.recorder else None
    )
    app.state.holder = ModelHolder(ModelSource(settings, serve.model_uri), serve, model, swapped)
    if model is not None:
        metrics.model_loaded(model, None)
    for routes in (routes_admin, routes_predict, routes_leads, routes_model, routes_pages):
        app.include_router(routes.router)
    routes_workspace.install(app)
    _error_handlers(app)
    app.add_middleware(_Guard, metrics=metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _recorder(store: StoreSettings, metrics: ServiceMetrics) -> Recorder | None:
    """The score store's write-behind recorder; None when the store is off. Nothing is
    opened here: the writer opens the store when it starts (and again after an outage)."""
    url = store.store_url
    if url is None:
        return None

    def open_store():
        from leadml.store import ScoreStore

        return ScoreStore(url)

    return Recorder(open_store, store.webhook_urls, metrics)


def _freeze_heap(refresh: bool = False) -> None:
    """Keep long-lived objects (libraries, the model) out of the collector's full passes,
    which otherwise showed up as 150 ms pauses in p99. After a reload the frozen set is
    thawed first, so that the previous model can be collected."""
    if refresh:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


def _error(
    status: int,
    message: str,
    errors: list[dict] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    # ASCII JSON: no text from a request (an id, a key) can make the error itself fail to encode
    body = json.dumps({"error": message, "errors": errors or []}, separators=(",", ":"))
    return Response(body, status, headers, media_type="application/json")


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LeadmlError)
    async def leadml_error(request: Request, exc: LeadmlError) -> Response:
        # the one mapping of leadml's errors: a request to fix (4xx) or no model yet (503)
        return _error(exc.status, str(exc), getattr(exc, "errors", None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)  # e.g. 405's Allow

    @app.exception_handler(RequestValidationError)
    async def query_error(request: Request, exc: RequestValidationError) -> Response:
        # query parameters and headers; inputs are not echoed (they may be personal data)
        errors = [
            {
                "lead": None,
                "lead_id": None,
                "field": ".".join(str(p) for p in e["loc"]),
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        return _error(422, "invalid request parameters", errors)


class _Guard:
    """Pure ASGI middleware: request count and latency per route, and the last line of defence.

    An exception escaping a handler becomes a JSON 500 here and is logged by type and place
    only. Left to Starlette, it would be re-raised to uvicorn, which logs its message, and a
    message can quote the lead's data. A client that hung up mid-request is no error of
    ours: it is counted as 499, not logged, and gets no answer (there is no one to read it).
    """

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [0]

        async def send_status(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except ClientDisconnect:
            status[0] = status[0] or CLIENT_GONE
        except Exception as exc:
            frames = traceback.extract_tb(exc.__traceback__)[-3:]
            where = " <- ".join(
                f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(frames)
            )
            log.error("unexpected %s at %s", type(exc).__name__, where)
            if not status[0]:
                status[0] = 500
                await _error(500, "internal error; the service log has the details")(
                    scope, receive, send
                )
        finally:
            self.metrics.request(scope["path"], status[0] or 500, time.perf_counter() - start)


def _openapi(app: FastAPI) -> dict:
    """OpenAPI with the loaded model's lead fields in the /predict request body."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    model: LoadedModel | None = app.state.holder.model
    body, components = schemas.request_body_schema(model.request if model else None)
    paths = spec["paths"]
    paths["/predict"]["post"]["requestBody"]["content"]["application/json"] = {"schema": body}
    batch = {"$ref": "#/components/schemas/LeadBatch"} if model else body
    paths["/predict/batch"]["post"]["requestBody"]["content"]["application/json"] = {
        "schema": batch
    }
    spec.setdefault("components", {}).setdefault("schemas", {}).update(components)
    app.openapi_schema = spec
    return spec
