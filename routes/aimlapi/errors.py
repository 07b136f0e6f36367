"""AI/ML API's flat error body ``{requestId, statusCode, timestamp, path, message}`` and its trace headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response

from routes.aimlapi import ids
from routes.aimlapi.settings import AimlapiSettings, section
from server.errors import (
    AuthenticationError,
    BadGatewayError,
    ContextLengthError,
    EngineUnavailableError,
    InternalError,
    InvalidRequestError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from server.http.jsonio import dumps

EXPOSED_HEADERS = "x-inference-id, x-client-request-id, x-aimlapi-credits-used, x-aimlapi-usd-spent"

CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

AUTH_MESSAGE = (
    "This request requires a valid API key. You can create a new API key on the Billing page: "
    "https://aimlapi.com/app/keys"
)

BODY_INVALID = "Body validation error!"


def error_message(exc: ServerError, settings: AimlapiSettings) -> str:
    """AI/ML API's catalogue message for a typed error."""
    if isinstance(exc, AuthenticationError):
        return AUTH_MESSAGE
    if isinstance(exc, ContextLengthError):
        return exc.message  # INFERRED: the upstream message passes through with 400
    if isinstance(exc, InvalidRequestError):
        return f"{BODY_INVALID} {exc.message}" if settings.validation_detail_in_message else BODY_INVALID
    if isinstance(exc, RateLimitError):
        return "Too Many Requests"
    if isinstance(exc, EngineUnavailableError):
        return "Service unavailable"
    if isinstance(exc, BadGatewayError):
        return "Bad Gateway"
    if isinstance(exc, RequestTimeoutError):
        return "Generation timeout"
    if isinstance(exc, InternalError) or exc.status >= 500:
        return "Internal server error"
    return exc.message


def error_body(exc: ServerError, path: str, settings: AimlapiSettings) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(ids.now(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "requestId": ids.new_request_id(),
        "statusCode": exc.status,
        "timestamp": stamp,
        "path": path,
        "message": error_message(exc, settings),
    }


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    settings = section(request.app.state.ctx) if request is not None else AimlapiSettings()
    path = request.url.path if request is not None else "/chat/completions"
    headers = trace_headers(request)
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return Response(
        dumps(error_body(exc, path, settings)), status_code=exc.status, media_type="application/json", headers=headers
    )


def trace_headers(request: Request | None) -> dict[str, str]:
    """``x-inference-id`` always; ``x-client-request-id`` echoed when valid (invalid values are dropped)."""
    headers = {"x-inference-id": ids.new_inference_id(), "Access-Control-Expose-Headers": EXPOSED_HEADERS}
    client_id = request.headers.get("x-client-request-id") if request is not None else None
    if client_id is not None and CLIENT_REQUEST_ID.match(client_id):
        headers["x-client-request-id"] = client_id
    return headers
