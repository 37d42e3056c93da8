"""Pages for people: the model card as a web page for marketers, and the front page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from leadml.deps import Model, error_responses

router = APIRouter()


@router.get(
    "/ledger", response_class=HTMLResponse, tags=["operations"], responses=error_responses(503)
)
async def ledger_page(model: Model) -> HTMLResponse:
    """For marketers: the model card and the band table as a web page."""
    from leadml.ledger import model_page

    return HTMLResponse(model_page(model.card()))


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse('<p>leadml scoring service: <a href="/docs">/docs</a></p>')
