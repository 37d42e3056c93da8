"""Scoring: one lead or a batch in, probability, score, band and reasons out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from leadml import schemas, scoring
from leadml.batcher import Batcher
from leadml.config import ServeSettings
from leadml.deps import Holder, Serve, error_responses, require_key
from leadml.parsing import ParsedRequest, parse_predict_body
from leadml.scoring import Keep, Wanted
from leadml.serving import LoadedModel, ModelHolder

BATCH_ALONE = 64  # requests with this many leads are scored on their own thread, not merged

router = APIRouter(tags=["scoring"])
_scoring: dict[str, Any] = {
    "response_model": schemas.PredictResponse,
    "responses": error_responses(400, 401, 413, 422, 503),
    "dependencies": [Depends(require_key)],
    "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {}}}},
}


def _score_many(
    model: LoadedModel, items: list[tuple[ParsedRequest, Wanted]], keep: Keep | None = None
) -> list[dict]:
    return scoring.score_requests(model, items, keep)  # looked up per call: tests replace it


def make_batcher(
    keep: Keep | None = None,
) -> Batcher[LoadedModel, tuple[ParsedRequest, Wanted], dict]:
    """The batcher of the predict routes: requests grouped by the model that validated them.
    `keep` (the score store's recorder) is handed each scoring pass."""
    return Batcher(lambda model, items: _score_many(model, items, keep))


@router.post("/predict", **_scoring)
async def predict(
    request: Request,
    holder: Holder,
    serve: Serve,
    reasons: bool = True,
    grade_reasons: bool = False,
    skip_invalid: bool = False,
) -> Any:
    """Score one lead (the lead object) or a batch (`{"leads": [...]}`).

    Each lead gets its probability, score, band and grades (fit, engagement, grid,
    temperature, stage, pql). `reasons=false` skips the score's reasons (faster).
    `grade_reasons=true` adds what made the fit and the engagement grade (`fit_reasons`,
    `engagement_reasons`; about a third more work per lead). `skip_invalid=true` scores the
    valid leads of a batch and lists the others under `rejected`, instead of refusing the
    request.
    """
    wanted = Wanted(reasons, grade_reasons)
    return await _predict(request, holder, serve, wanted, skip_invalid, batch_only=False)


@router.post("/predict/batch", **_scoring)
async def predict_batch(
    request: Request,
    holder: Holder,
    serve: Serve,
    reasons: bool = True,
    grade_reasons: bool = False,
    skip_invalid: bool = False,
) -> Any:
    """Score a batch (`{"leads": [...]}`, nothing else); options and answer as for /predict."""
    wanted = Wanted(reasons, grade_reasons)
    return await _predict(request, holder, serve, wanted, skip_invalid, batch_only=True)


async def _predict(
    request: Request,
    holder: ModelHolder,
    serve: ServeSettings,
    wanted: Wanted,
    skip_invalid: bool,
    batch_only: bool,
) -> Response:
    batcher: Batcher = request.app.state.batcher
    batcher.arriving += 1
    try:
        model = holder.ready()  # read once: this request is scored by this model
        body = await _read_body(request, serve)
        parsed = parse_predict_body(body, model.request, serve.max_batch, skip_invalid, batch_only)
    finally:
        batcher.arriving -= 1
    if len(parsed.leads) >= BATCH_ALONE:
        recorder = request.app.state.recorder
        keep = recorder.keep if recorder is not None else None
        out = await asyncio.to_thread(scoring.score_request, model, parsed, wanted, keep)
    else:
        out = await batcher.score(model, (parsed, wanted))
    request.app.state.metrics.scored(out)
    return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")


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
