"""Ollama's error body, ``{"error": "<text>"}``, and its JSON bytes (Go's ``encoding/json``).

Ollama writes JSON with Go's ``json.Marshal``: compact, keys in struct order, and ``<``, ``>``, ``&``, U+2028 and
U+2029 escaped as ``\\u003c`` etc. (those characters only occur inside JSON strings, so replacing the bytes of
the compact output is exact). Messages are Ollama's where it has one for the case (an unknown model, a context
overflow, a missing key on ollama.com), else the core's.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from server.errors import (
    AuthenticationError,
    ClientDisconnectedError,
    ContextLengthError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    OverloadedError,
    ServerError,
)
from server.http.jsonio import dumps

JSON_TYPE = "application/json; charset=utf-8"
_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))
_GO_SEPARATORS = (("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def go_json(value: Any) -> bytes:
    """``value`` as Go's ``json.Marshal`` writes it (given keys already in Go's order)."""
    raw = dumps(value)
    for plain, escaped in _GO_ESCAPES:
        if plain in raw:
            raw = raw.replace(plain, escaped)
    if b"\xe2\x80" in raw:
        for plain, escaped in _GO_SEPARATORS:
            raw = raw.replace(plain, escaped)
    return raw


# Ollama's scheduler's ErrMaxQueue, answered 503 when its queue of pending requests is full
BUSY = "server busy, please try again.  maximum pending requests exceeded"


def not_found(model: str) -> str:
    return f"model '{model}' not found"


def message_of(exc: ServerError) -> str:
    if isinstance(exc, AuthenticationError):
        return "unauthorized"  # ollama.com's answer to a missing or wrong key
    if isinstance(exc, ModelNotFoundError):
        return not_found(exc.model)
    if isinstance(exc, ContextLengthError):
        return "the input length exceeds the context length"
    if isinstance(exc, MethodNotAllowedError):
        return "405 method not allowed"
    if isinstance(exc, NotFoundError):
        return "404 page not found"
    if isinstance(exc, ClientDisconnectedError):
        return "request canceled"
    if isinstance(exc, OverloadedError):
        return BUSY
    return exc.message


def error_body(exc: ServerError) -> dict[str, Any]:
    return {"error": message_of(exc)}


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    return Response(go_json(body), status_code=status, media_type=JSON_TYPE)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(go_json({"error": message}), status_code=status, media_type=JSON_TYPE, headers=headers)


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return error_response(exc.status, message_of(exc), headers)
