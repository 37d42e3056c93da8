"""The model being served, as data: its card."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from leadml import schemas
from leadml.deps import Model, error_responses, require_key

router = APIRouter(tags=["operations"])


@router.get(
    "/model",
    response_model=schemas.ModelCard,
    responses=error_responses(401, 503),
    dependencies=[Depends(require_key)],
)
async def model_card(model: Model) -> Any:
    """The model card: version, training data, metrics, band thresholds and backtest, features."""
    return model.card()
