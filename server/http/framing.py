"""Malformed request framing, handed from the HTTP protocol to the app so that the owning route renders it.

The protocol (``server/http/protocol.py``) puts the parser's message under ``FRAMING_ERROR`` in the ASGI scope's
``extensions``. A malformed head (a bogus ``Content-Length``, ``Content-Length`` with ``Transfer-Encoding``, a bad
header line) whose request line was readable calls the app with the request line and the headers read so far and
no body: ``FramingErrorMiddleware`` answers it with a 400 in the envelope of the wire API owning the path. A body
whose framing breaks mid-way (invalid chunked encoding) ends there and the key appears while the app reads it:
``read_json_object`` raises the 400. Either way the connection closes after the answer.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import InvalidRequestError, ServerError

FRAMING_ERROR = "gptoss.http.framing_error"


def mark_framing_error(scope: MutableMapping[str, Any], message: str) -> None:
    scope.setdefault("extensions", {})[FRAMING_ERROR] = message


def framing_error(scope: Scope) -> InvalidRequestError | None:
    """The typed error for a request whose framing the protocol found malformed, else None."""
    extensions = scope.get("extensions")
    message = extensions.get(FRAMING_ERROR) if extensions else None
    if message is None:
        return None
    return InvalidRequestError(f"Malformed HTTP request: {message}.", code="malformed_request")


class FramingErrorMiddleware:
    """Answers a request with a malformed head in the owning route's envelope, before routing (or auth)."""

    def __init__(self, app: ASGIApp, render: Callable[[ServerError, Request], Response]) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = framing_error(scope) if scope["type"] == "http" else None
        if error is None:
            await self.app(scope, receive, send)
            return
        await self.render(error, Request(scope, receive))(scope, receive, send)
