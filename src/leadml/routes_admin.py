"""Operations: alive, ready, metrics, and reloading the model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from leadml import schemas
from leadml.deps import Holder, error_responses, require_key
from leadml.errors import ModelError

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=schemas.Health)
async def health() -> dict:
    """Alive (the process answers), whether or not a model is loaded."""
    return {"status": "ok"}


@router.get("/ready", response_model=schemas.Ready, responses=error_responses(503))
async def ready(holder: Holder) -> Any:
    """Ready to score: a model is loaded."""
    model = holder.ready()
    return {"ready": True, "model": model.name, "model_version": model.version}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Requests, latency histogram and leads per band, in Prometheus text format."""
    body, content_type = request.app.state.metrics.exposition()
    return Response(body, media_type=content_type)


@router.post(
    "/admin/reload",
    response_model=schemas.Reloaded,
    responses=error_responses(401, 503),
    dependencies=[Depends(require_key)],
)
async def reload(holder: Holder) -> Any:
    """Load the model source now (the champion alias or the export), swap it in atomically."""
    before = holder.model
    new = await holder.load(force=True)
    if new is None:
        raise ModelError(f"reload failed: {holder.last_error}; still serving the previous model")
    holder.announce()
    return {
        "model": new.name,
        "model_version": new.version,
        "previous_version": before.version if before else None,
    }
