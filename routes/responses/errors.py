"""OpenAI's error envelope (``{"error": {message, type, param, code}}``) and the stream's ``error`` event."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from server.errors import ServerError
from server.http.jsonio import dumps


def error_body(exc: ServerError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.kind, "param": exc.param, "code": exc.code}}


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return Response(dumps(error_body(exc)), status_code=exc.status, media_type="application/json", headers=headers)


def response_error(exc: ServerError) -> dict[str, str]:
    """The ``error`` of a failed response object: OpenAI's codes are few; everything of ours is ``server_error``
    except a refusal for load (``rate_limit_exceeded``)."""
    code = "rate_limit_exceeded" if exc.status == 429 else "server_error"
    return {"code": code, "message": exc.message}
