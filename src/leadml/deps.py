"""FastAPI dependencies of the service: its settings, the model holder and the API key.

Everything a route needs comes through here from `app.state`, where `create_app` put it
once; routes never read the environment or globals. All are `async def`: a plain `def`
dependency would cost each request a trip through the thread pool.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from leadml.config import ServeSettings, Settings
from leadml.schemas import ERROR_STATUSES, ErrorResponse, RequestError
from leadml.serving import LoadedModel, ModelHolder

API_KEY_HEADER = "X-API-Key"
_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_serve(request: Request) -> ServeSettings:
    return request.app.state.serve


async def get_holder(request: Request) -> ModelHolder:
    return request.app.state.holder


Holder = Annotated[ModelHolder, Depends(get_holder)]
Serve = Annotated[ServeSettings, Depends(get_serve)]


async def ready_model(holder: Holder) -> LoadedModel:
    """The model to answer with, read once per request; 503 while none is loaded."""
    return holder.ready()


Model = Annotated[LoadedModel, Depends(ready_model)]


async def require_key(
    request: Request, key: Annotated[str | None, Depends(_key_header)], serve: Serve
) -> None:
    """401 unless the request carries the API key (when LEADML_API_KEY is set), or the
    workspace's session cookie (the page's own scripts: SameSite=Strict, so never another
    site's)."""
    if not serve.api_key or (key and secrets.compare_digest(key, serve.api_key)):
        return
    from leadml.workspace_auth import SESSION_COOKIE, session_token

    cookie = request.cookies.get(SESSION_COOKIE) or ""
    tokens = [session_token(serve.api_key, "user")]
    if serve.admin_key:
        tokens.append(session_token(serve.admin_key, "admin"))
    if not any(secrets.compare_digest(cookie, t) for t in tokens):
        raise RequestError(401, f"missing or wrong API key: send it in {API_KEY_HEADER}")


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """The OpenAPI `responses` of a route that can answer these error statuses."""
    return {s: {"model": ErrorResponse, "description": ERROR_STATUSES[s]} for s in statuses}
