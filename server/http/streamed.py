"""A streamed answer (server-sent events, NDJSON) whose body takes the short way to the socket.

The response head goes through the app's whole middleware stack (the request id header, status tracking, CORS),
as any response's does. The body messages, one per event and so one per token, go straight to the connection's own
``send`` when the HTTP protocol offers it in the scope (``BODY_SEND``, ``server/http/protocol.py``) and the app
allows it (``allow_body_lane``: every installed middleware passes body messages through unread); each event would
otherwise pass four ``send`` wrappers (Starlette's two exception handlers, its error middleware, the request log).
Without the extension (an in-process ASGI client) the body takes the stack's ``send`` like the head; the bytes are
the same either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

BODY_SEND = "gptoss.http.body_send"  # scope extension: the connection's own ``send``


def offer_body_send(scope: dict[str, Any], send: Send) -> None:
    """The protocol's side: put the connection's ``send`` in the request's scope."""
    scope.setdefault("extensions", {})[BODY_SEND] = send


def allow_body_lane(app: Starlette, transparent: Iterable[type]) -> None:
    """Let streamed bodies bypass the middleware stack while every installed middleware is one of ``transparent``
    (classes whose ``send`` wrapper passes body messages through untouched)."""
    app.state.body_transparent = frozenset(transparent)


def body_lane_allowed(app: Starlette) -> bool:
    """Whether ``app``'s middlewares (as installed now) all pass body messages through."""
    transparent = getattr(app.state, "body_transparent", frozenset())
    return all(middleware.cls in transparent for middleware in app.user_middleware)


class StreamedResponse(StreamingResponse):
    """``StreamingResponse`` for an iterator of bytes, its body sent by the short way when allowed."""

    body_iterator: AsyncIterator[bytes]

    def __init__(
        self, content: AsyncIterator[bytes], media_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self._body_send: Send | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions")
        body_send = extensions.get(BODY_SEND) if extensions else None
        if body_send is not None and _lane_open(scope.get("app")):
            self._body_send = body_send
        await super().__call__(scope, receive, send)

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        body_send = self._body_send or send
        async for chunk in self.body_iterator:
            await body_send({"type": "http.response.body", "body": chunk, "more_body": True})
        await body_send({"type": "http.response.body", "body": b"", "more_body": False})


def _lane_open(app: Starlette | None) -> bool:
    """``body_lane_allowed``, read once per app: middlewares cannot be added once it serves."""
    if app is None:
        return False
    state = app.state
    allowed: bool | None = getattr(state, "body_lane", None)
    if allowed is None:
        allowed = state.body_lane = body_lane_allowed(app)
    return allowed
