"""Lead memory: a lead's latest score and its history, from the score store.

The store is read in a worker thread (the event loop never waits on the database). What this
worker queued a moment ago is written first, so a lead scored just before is found; another
worker's scores are there within a fraction of a second (its writer's batch interval).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from leadml import history, schemas
from leadml.deps import error_responses, require_key
from leadml.errors import NotFoundError
from leadml.recorder import Recorder, StoreUnavailable
from leadml.store import GRADE_FIELDS, ScoreRecord

router = APIRouter(tags=["lead memory"], dependencies=[Depends(require_key)])
_NOT_FOUND = {
    "model": schemas.ErrorResponse,
    "description": "No score kept for this lead (or the score store is off)",
}
_DOWN = {"model": schemas.ErrorResponse, "description": "The score store cannot be read now"}
_RESPONSES: dict[int | str, dict] = {
    **error_responses(401, 422),  # 422: a `limit` out of range
    404: _NOT_FOUND,
    503: _DOWN,
}


@router.get("/leads/{lead_id}", response_model=schemas.StoredScore, responses=_RESPONSES)
async def latest_score(request: Request, lead_id: str) -> Any:
    """The lead's latest score: probability, score, band, grades, model version, time, reasons."""
    found = await read_scores(request, lead_id, 1)
    return _entry(found[0])


@router.get(
    "/leads/{lead_id}/history", response_model=schemas.LeadHistoryResponse, responses=_RESPONSES
)
async def lead_history(
    request: Request,
    lead_id: str,
    limit: int = Query(20, ge=1, le=1000, description="How many of the newest scores"),
) -> Any:
    """The lead's scores newest first, the trend (rising / falling / flat, with its slope in
    points per score) and what changed between consecutive scores, in words."""
    view = history.describe(lead_id, await read_scores(request, lead_id, limit))
    return {
        "lead_id": lead_id,
        "entries": [_entry(r) for r in view.entries],
        "trend": {"direction": view.trend, "slope": view.slope, "over": view.trend_over},
        "changes": [vars(c) for c in view.changes],
    }


async def read_scores(request: Request, lead_id: str, limit: int) -> list[ScoreRecord]:
    """The lead's newest `limit` scores, newest first; the API and the workspace's lead page
    both read through here, so both say the same when the store is off, down or has none."""
    recorder: Recorder | None = request.app.state.recorder
    if recorder is None:
        raise NotFoundError("the score store is off (LEADML_STORE_URL=off): no scores are kept")

    def read() -> list[ScoreRecord]:
        recorder.flush(timeout=1.0)
        return recorder.store().history(lead_id, limit)

    try:
        found = await asyncio.to_thread(read)
    except StoreUnavailable as exc:
        raise schemas.RequestError(503, f"the score store cannot be read now ({exc})") from None
    except Exception as exc:  # the database went away between two requests
        raise schemas.RequestError(
            503, f"the score store cannot be read now ({type(exc).__name__})"
        ) from None
    if not found:
        raise schemas.RequestError(
            404,
            "no score kept for this lead id: it was never scored with an id, or its "
            "scores were pruned (LEADML_STORE_RETENTION_DAYS)",
        )
    return found


def _entry(r: ScoreRecord) -> dict:
    return {
        "lead_id": r.lead_id,
        "scored_at": r.scored_at,
        "model": r.model_name,
        "model_version": r.model_version,
        "probability": r.probability,
        "score": r.score,
        "band": r.band,
        **{name: getattr(r, name) for name in GRADE_FIELDS},
        "reasons": [{"field": f, "points": p} for f, p in r.reasons],
    }
