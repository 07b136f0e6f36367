"""Reading a request body as a JSON object, bounded in size, with typed errors."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from server.errors import ClientDisconnectedError, InvalidRequestError, PayloadTooLargeError
from server.http.framing import framing_error


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
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
