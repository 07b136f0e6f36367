"""Oxen's error body."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from server.errors import (
    AuthenticationError,
    ModelNotFoundError,
    NotFoundError,
    RateLimitError,
    RequestError,
    ServerError,
)
from server.http.jsonio import dumps

TITLES = {
    "unauthenticated": "You must be authenticated to perform this action.",
    "invalid_params": "Invalid parameters supplied, please check your request and try again.",
    "resource_not_found": "The requested resource could not be found",
    "too_many_requests": "Too many requests, please try again later.",
    "unknown_error": "An unknown error occurred.",
}


def _error_type(exc: ServerError) -> str:
    if isinstance(exc, AuthenticationError):
        return "unauthenticated"
    if isinstance(exc, NotFoundError):
        return "resource_not_found"
    if isinstance(exc, RateLimitError):
        return "too_many_requests"
    if isinstance(exc, RequestError):
        return "invalid_params"
    return "unknown_error"


def error_body(exc: ServerError) -> dict[str, Any]:
    if isinstance(exc, ModelNotFoundError):
        return {"error": {"message": f"Model not found: {exc.model}"}}
    kind = _error_type(exc)
    error = {"type": kind, "title": TITLES[kind]}
    if kind != "unauthenticated":
        error["detail"] = exc.message
    return {"error": error, "status": "error", "status_message": kind}


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return Response(dumps(error_body(exc)), status_code=exc.status, media_type="application/json", headers=headers)
