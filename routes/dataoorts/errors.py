"""Cloudflare's envelope for errors: ``{result: null, success: false, errors: [{code, message}], messages}``."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response

from routes.dataoorts.settings import DataoortsSettings, section
from server.errors import (
    AuthenticationError,
    ContextLengthError,
    EngineUnavailableError,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    UnsupportedMediaTypeError,
)
from server.http.jsonio import dumps


def _error_code(exc: ServerError) -> int:
    if isinstance(exc, AuthenticationError):
        return 10000
    if isinstance(exc, ModelNotFoundError):
        return 5007
    if isinstance(exc, ContextLengthError):
        return 8007
    if isinstance(exc, PayloadTooLargeError):
        return 3006
    if isinstance(exc, RateLimitError):
        return 3040
    if isinstance(exc, MethodNotAllowedError):
        return 7001
    if isinstance(exc, NotFoundError):
        return 7000
    if isinstance(exc, InvalidRequestError | UnsupportedMediaTypeError):
        return 5004
    if isinstance(exc, EngineUnavailableError):
        return 3050
    if isinstance(exc, RequestTimeoutError):
        return 3007
    return 3043


def _error_message(exc: ServerError) -> str:
    if isinstance(exc, AuthenticationError):
        return "Authentication error"
    if isinstance(exc, ModelNotFoundError):
        return f"No such model {exc.model} or task"
    if isinstance(exc, ContextLengthError):
        upstream = {"object": "error", "message": exc.message, "type": "BadRequestError", "param": None, "code": 400}
        return f"AiError: AiError: {dumps(upstream).decode()} ({uuid.uuid4()})"
    if isinstance(exc, InvalidRequestError) and exc.param and exc.param not in exc.message:
        return f"{exc.message} (at '{exc.param}')"
    return exc.message


def error_body(exc: ServerError, settings: DataoortsSettings) -> dict[str, Any]:
    result: dict[str, Any] | None = {} if isinstance(exc, ContextLengthError) else None
    body = {
        "result": result,
        "success": False,
        "errors": [{"code": _error_code(exc), "message": _error_message(exc)}],
        "messages": [],
    }
    return dict(sorted(body.items())) if settings.error_key_order == "alphabetical" else body


def _status(exc: ServerError) -> int:
    # Cloudflare answers an unknown model with 400 (code 5007), not 404, and a timeout with 408 (code 3007).
    if isinstance(exc, ModelNotFoundError):
        return 400
    return 408 if isinstance(exc, RequestTimeoutError) else exc.status


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    settings = section(request.app.state.ctx) if request is not None else DataoortsSettings()
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    body = dumps(error_body(exc, settings))
    return Response(body, status_code=_status(exc), media_type="application/json", headers=headers)
