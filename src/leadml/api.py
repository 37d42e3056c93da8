"""The scoring service: a FastAPI app factory; the model is loaded in the lifespan.

`create_app()` reads `ServeSettings` from the environment (or takes them, and optionally an
already loaded model, from tests). Each request is scored by exactly one model: handlers
read `app.state.model` once, and a reload swaps that reference only when the new model is
fully loaded, so requests in flight during a swap all finish on the model they started with.

The request schema is made from the loaded model's feature spec (`schemas.py`), so `/docs`
shows the fields this model reads. Errors never echo input values (they may be personal
data) and never reach a 500 for bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import secrets
import time
import traceback
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, Response
from fastapi.security import APIKeyHeader
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from leadml import schemas
from leadml.config import ServeSettings, Settings
from leadml.serving import Batcher, LoadedModel, ModelSource, ServiceMetrics, score_request

log = logging.getLogger("leadml.api")
API_KEY_HEADER = "X-API-Key"
CLIENT_GONE = 499  # the client hung up before the answer (nginx's status for it)
BATCH_ALONE = 64  # requests with this many leads are scored on their own thread, not merged


def _error(
    status: int,
    message: str,
    errors: list[dict] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    # ASCII JSON: no text from a request (an id, a key) can make the error itself fail to encode
    body = json.dumps({"error": message, "errors": errors or []}, separators=(",", ":"))
    return Response(body, status, headers, media_type="application/json")


class _Reloader:
    """Loads the model at start-up, polls the source, swaps atomically, answers /admin/reload."""

    def __init__(self, app: FastAPI, source: ModelSource, serve: ServeSettings):
        self.app, self.source, self.serve = app, source, serve
        self.lock = asyncio.Lock()
        self.last_error: str | None = None
        self.token = os.environ.get("LEADML_RELOAD_TOKEN")  # shared by sibling workers
        self.token_seen = self._token_stamp()

    def _token_stamp(self) -> int:
        try:
            return os.stat(self.token).st_mtime_ns if self.token else 0
        except OSError:
            return 0

    async def load(self, force: bool = False) -> LoadedModel | None:
        """Load when the source moved (or when forced); swap only a fully loaded model."""
        async with self.lock:
            current: LoadedModel | None = self.app.state.model
            try:
                stamp = await asyncio.to_thread(self.source.fingerprint)
                if not force and current is not None and stamp == current.fingerprint:
                    return None
                new = await asyncio.to_thread(self.source.load, stamp)
            except Exception as exc:  # the service stays up on the model it has
                error = f"{type(exc).__name__}: {exc}"
                if error != self.last_error:  # retried every second: say it once
                    log.error("model not loaded from %s: %s", self.source.uri, error)
                self.last_error = error
                return None
            self.last_error = None
            self.app.state.model = new  # the swap: one reference assignment
            self.app.openapi_schema = None  # /docs follows the new model's fields
            self.app.state.metrics.model_loaded(new, current)
            log.info("serving %s version %s from %s", new.name, new.version, new.uri)
            if current is not None:  # let the old model's objects go, freeze the new ones
                _freeze_heap(refresh=True)
            return new

    def announce(self) -> None:
        """Tell sibling workers (same token file) to reload now."""
        if self.token:
            with open(self.token, "a"):
                os.utime(self.token)
            self.token_seen = self._token_stamp()

    async def poll(self) -> None:
        tick = min(1.0, self.serve.reload_seconds) if self.serve.reload_seconds else 1.0
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            stamp = self._token_stamp()
            if stamp != self.token_seen:
                self.token_seen = stamp
                await self.load(force=True)
                last_check = time.monotonic()
            elif (
                self.serve.reload_seconds
                and time.monotonic() - last_check >= self.serve.reload_seconds
            ) or self.app.state.model is None:
                await self.load()
                last_check = time.monotonic()


def _freeze_heap(refresh: bool = False) -> None:
    """Keep long-lived objects (libraries, the model) out of the collector's full passes,
    which otherwise showed up as 150 ms pauses in p99. After a reload the frozen set is
    thawed first, so that the previous model can be collected."""
    if refresh:
        gc.unfreeze()
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None,
    serve: ServeSettings | None = None,
    model: LoadedModel | None = None,
) -> FastAPI:
    """The service. Without arguments everything comes from the environment (LEADML_*)."""
    settings = settings or Settings.from_env()
    serve = serve or ServeSettings.from_env()
    source = ModelSource(settings, serve.model_uri)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reloader = app.state.reloader
        if app.state.model is None:
            await reloader.load()
        _freeze_heap()
        task = asyncio.create_task(reloader.poll())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.state.batcher.close()
            app.state.metrics.close()

    app = FastAPI(
        title="leadml scoring service",
        version="1",
        description=(
            "Calibrated conversion probability, a 1-99 score, an SQL / MQL / Unqualified band "
            "and the reasons behind the score, for one lead or a batch."
        ),
        lifespan=lifespan,
    )
    app.state.model = model
    app.state.serve = serve
    app.state.metrics = ServiceMetrics()
    app.state.batcher = Batcher()
    app.state.reloader = _Reloader(app, source, serve)
    if model is not None:
        app.state.metrics.model_loaded(model, None)
    _routes(app, serve)
    _error_handlers(app)
    app.add_middleware(_Guard, metrics=app.state.metrics)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _routes(app: FastAPI, serve: ServeSettings) -> None:
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    async def require_key(key: str | None = Depends(key_header)) -> None:
        if serve.api_key and not (key and secrets.compare_digest(key, serve.api_key)):
            raise StarletteHTTPException(
                401, f"missing or wrong API key: send it in {API_KEY_HEADER}"
            )

    def not_ready() -> str:
        return f"no model loaded ({app.state.reloader.last_error or 'still loading'})"

    def ready_model() -> LoadedModel:
        model = app.state.model
        if model is None:
            raise StarletteHTTPException(503, not_ready())
        return model

    errors = {
        s: {"model": schemas.ErrorResponse, "description": d}
        for s, d in schemas.ERROR_STATUSES.items()
    }

    @app.get("/health", response_model=schemas.Health, tags=["operations"])
    async def health() -> dict:
        """Alive (the process answers), whether or not a model is loaded."""
        return {"status": "ok"}

    @app.get("/ready", response_model=schemas.Ready, tags=["operations"],
             responses={503: errors[503]})  # fmt: skip
    async def ready() -> Any:
        """Ready to score: a model is loaded."""
        model = app.state.model
        if model is None:
            return _error(503, not_ready())
        return {"ready": True, "model": model.name, "model_version": model.version}

    async def predict_body(
        request: Request, reasons: bool, skip_invalid: bool, batch_only: bool
    ) -> Response:
        batcher: Batcher = app.state.batcher
        batcher.arriving += 1
        try:
            model = ready_model()
            body = await _read_body(request, serve)
            parsed = schemas.parse_predict_body(
                body, model, serve.max_batch, skip_invalid, batch_only
            )
        finally:
            batcher.arriving -= 1
        if len(parsed.leads) >= BATCH_ALONE:
            out = await asyncio.to_thread(score_request, model, parsed, reasons)
        else:
            out = await app.state.batcher.score(model, parsed, reasons)
        app.state.metrics.scored(out)
        return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")

    scoring = {
        "response_model": schemas.PredictResponse,
        "responses": {s: errors[s] for s in (400, 401, 413, 422, 503)},
        "dependencies": [Depends(require_key)],
        "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {}}}},
        "tags": ["scoring"],
    }

    @app.post("/predict", **scoring)  # type: ignore[arg-type]
    async def predict(request: Request, reasons: bool = True, skip_invalid: bool = False) -> Any:
        """Score one lead (the lead object) or a batch (`{"leads": [...]}`).

        `reasons=false` skips the reasons (faster). `skip_invalid=true` scores the valid leads
        of a batch and lists the others under `rejected`, instead of refusing the request.
        """
        return await predict_body(request, reasons, skip_invalid, batch_only=False)

    @app.post("/predict/batch", **scoring)  # type: ignore[arg-type]
    async def predict_batch(
        request: Request, reasons: bool = True, skip_invalid: bool = False
    ) -> Any:
        """Score a batch (`{"leads": [...]}`, nothing else); options and answer as for /predict."""
        return await predict_body(request, reasons, skip_invalid, batch_only=True)

    @app.get("/model", response_model=schemas.ModelCard, tags=["operations"],
             responses={s: errors[s] for s in (401, 503)}, dependencies=[Depends(require_key)])  # fmt: skip
    async def model_card() -> Any:
        """The model card: version, training data, metrics, band thresholds and backtest, features."""
        return ready_model().card()

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})  # fmt: skip
    async def metrics() -> Response:
        """Requests, latency histogram and leads per band, in Prometheus text format."""
        body, content_type = app.state.metrics.exposition()
        return Response(body, media_type=content_type)

    @app.post("/admin/reload", response_model=schemas.Reloaded, tags=["operations"],
              responses={s: errors[s] for s in (401, 503)}, dependencies=[Depends(require_key)])  # fmt: skip
    async def reload() -> Any:
        """Load the model source now (the champion alias or the export), swap it in atomically."""
        reloader: _Reloader = app.state.reloader
        before = app.state.model
        new = await reloader.load(force=True)
        if new is None:
            return _error(
                503, f"reload failed: {reloader.last_error}; still serving the previous model"
            )
        reloader.announce()
        return {
            "model": new.name,
            "model_version": new.version,
            "previous_version": before.version if before else None,
        }

    @app.get("/ledger", response_class=HTMLResponse, tags=["operations"],
             responses={503: errors[503]})  # fmt: skip
    async def ledger_page() -> HTMLResponse:
        """For marketers: the model card and the band table as a web page."""
        from leadml.ledger import model_page

        return HTMLResponse(model_page(ready_model().card()))

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse('<p>leadml scoring service: <a href="/docs">/docs</a></p>')


async def _read_body(request: Request, serve: ServeSettings) -> bytes:
    limit = int(serve.max_body_mb * 1024 * 1024)
    too_big = schemas.RequestError(
        413,
        f"request body over {serve.max_body_mb:g} MB (LEADML_MAX_BODY_MB); send smaller batches",
    )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(schemas.RequestError)
    async def request_error(request: Request, exc: schemas.RequestError) -> Response:
        return _error(exc.status, exc.message, exc.errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)  # e.g. 405's Allow

    @app.exception_handler(RequestValidationError)
    async def query_error(request: Request, exc: RequestValidationError) -> Response:
        # query parameters and headers; inputs are not echoed (they may be personal data)
        errors = [
            {"lead": None, "lead_id": None, "field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
            for e in exc.errors()
        ]  # fmt: skip
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
    spec = get_openapi(title=app.title, version=app.version, description=app.description,
                       routes=app.routes)  # fmt: skip
    body, components = schemas.request_body_schema(app.state.model)
    spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"] = {
        "schema": body
    }
    batch = {"$ref": "#/components/schemas/LeadBatch"} if app.state.model else body
    spec["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["application/json"] = {
        "schema": batch
    }
    spec.setdefault("components", {}).setdefault("schemas", {}).update(components)
    app.openapi_schema = spec
    return spec
