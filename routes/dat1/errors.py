"""llama-server's error envelope ``{"error": {"code", "message", "type"}}``, the HTTP status equal to ``code``."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from routes.dat1.settings import Dat1Settings, section
from server.errors import (
    ContextLengthError,
    InvalidRequestError,
    ServerError,
)
from server.http.jsonio import dumps

JSON_TYPE = "application/json; charset=utf-8"  # llama-server's MIMETYPE_JSON

# llama-server's `format_error_response`: type name for each status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}

CONTEXT_ERROR_A = (
    "the request exceeds the available context size. try increasing the context size or enable context shift"
)


class ParseError(InvalidRequestError):
    """Refused while llama-server parses the chat body (``oaicompat_chat_params_parse``, or the JSON itself).

    The Aug-2025 build lets these reach its exception handler (500 ``server_error``); the spec's table and newer
    builds answer 400. ``Dat1Settings.parse_errors_as_server_error`` picks."""


def error_info(exc: ServerError, settings: Dat1Settings) -> dict[str, Any]:
    """The ``error`` object: ``code`` (= HTTP status), ``message``, ``type`` (+ context numbers in era C)."""
    status = exc.status
    if isinstance(exc, ParseError) and settings.parse_errors_as_server_error:
        status = 500
    kind = ERROR_TYPES.get(status, exc.kind)
    message = exc.message
    if isinstance(exc, ContextLengthError):
        if settings.stream_era == "C":
            message = (
                f"request ({exc.prompt_tokens} tokens) exceeds the available context size ({exc.max_context} "
                "tokens), try increasing it"
            )
            return {
                "code": status,
                "message": message,
                "type": "exceed_context_size_error",
                "n_prompt_tokens": exc.prompt_tokens,
                "n_ctx": exc.max_context,
            }
        message = CONTEXT_ERROR_A
    return {"code": status, "message": message, "type": kind}


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    settings = section(request.app.state.ctx) if request is not None else Dat1Settings()
    info = error_info(exc, settings)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return Response(dumps({"error": info}), status_code=info["code"], media_type=JSON_TYPE, headers=headers)
