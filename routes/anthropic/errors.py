"""Anthropic's error envelope, ``{"type": "error", "error": {"type", "message"}, "request_id"}``, its statuses, and
the ``error`` event of a stream that fails after its first byte.

Our 503s (the engine loading or gone, the server draining) are Anthropic's ``529 overloaded_error``, which its clients
retry; a prompt longer than the context is worded as Anthropic words it ("prompt is too long: N tokens > M maximum"),
which Claude Code reads to compact the conversation.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response

from server.errors import ContextLengthError, OverloadedError, ServerError
from server.http.jsonio import dumps

# our status -> (Anthropic's status, error type)
_STATUSES: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    405: (405, "invalid_request_error"),
    413: (413, "request_too_large"),
    415: (415, "invalid_request_error"),
    429: (429, "rate_limit_error"),
    499: (499, "invalid_request_error"),
    500: (500, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}


def status_and_type(exc: ServerError) -> tuple[int, str]:
    return _STATUSES.get(exc.status, (exc.status, "api_error" if exc.status >= 500 else "invalid_request_error"))


def message_of(exc: ServerError) -> str:
    if isinstance(exc, ContextLengthError) and exc.param != "max_tokens":
        return f"prompt is too long: {exc.prompt_tokens} tokens > {exc.max_context} maximum"
    if isinstance(exc, OverloadedError):
        return "Overloaded"  # the message of Anthropic's own 529s
    return exc.message


def error_object(exc: ServerError) -> dict[str, Any]:
    """The event of a stream that fails mid-way (and the body of an error, without its ``request_id``)."""
    return {"type": "error", "error": {"type": status_and_type(exc)[1], "message": message_of(exc)}}


def request_id(request: Request | None) -> str:
    """``req_`` and the request's id (the ``X-Request-Id`` of the request log line)."""
    state = getattr(request, "state", None)
    return "req_" + str(getattr(state, "request_id", None) or uuid.uuid4().hex)


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    status, _ = status_and_type(exc)
    rid = request_id(request)
    headers = {"request-id": rid}
    if exc.retry_after is not None:
        headers["retry-after"] = str(exc.retry_after)
    body = {**error_object(exc), "request_id": rid}
    return Response(dumps(body), status_code=status, media_type="application/json", headers=headers)
