"""OpenAI's error envelope: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from server.errors import ServerError
from server.http.jsonio import dumps
from server.types import Finish


def error_body(exc: ServerError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.kind, "param": exc.param, "code": exc.code}}


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return Response(dumps(error_body(exc)), status_code=exc.status, media_type="application/json", headers=headers)


def stream_error(finish: Finish) -> dict[str, Any]:
    """The one event vLLM sends when generation fails after the first byte."""
    return {
        "error": {"message": finish.error or "Generation failed.", "type": "server_error", "param": None, "code": None}
    }
