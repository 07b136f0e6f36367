"""Reading a request body as a JSON object: JSON media type required, bounded in size, with typed errors."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from server.errors import (
    ClientDisconnectedError,
    InvalidRequestError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from server.http.framing import framing_error


def require_json_media_type(request: Request) -> None:
    """``Content-Type: application/json`` or ``application/<x>+json``, parameters (``charset``) allowed.

    Anything else is a 415: a browser can send text/plain or a form to any origin without a CORS preflight."""
    value = request.headers.get("content-type")
    if value is None:
        raise UnsupportedMediaTypeError("Missing Content-Type header; the body must be sent as application/json.")
    media = value.partition(";")[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    shown = value if len(value) <= 100 else value[:100] + "..."
    raise UnsupportedMediaTypeError(f"Unsupported Content-Type {shown!r}; the body must be sent as application/json.")


async def read_json_object(request: Request, limit: int, *, media_type: bool = True) -> dict[str, Any]:
    """The body as a JSON object, at most ``limit`` bytes; ``media_type=False`` skips the Content-Type check (for a
    route whose provider reads any body as JSON; it must then do its own check for browser requests)."""
    if media_type:
        require_json_media_type(request)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLargeError(f"Request body too large (limit {limit} bytes).")
        except ValueError:
            raise InvalidRequestError("Invalid Content-Length header.") from None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(f"Request body too large (limit {limit} bytes).")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientDisconnectedError("The client closed the connection while sending the body.") from None
    malformed = framing_error(request.scope)
    if malformed is not None:
        raise malformed
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequestError("The request body is empty; a JSON object is required.")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    return value
