"""A streamed answer (server-sent events, NDJSON) whose body takes the short way to the socket.

The response head goes through the app's whole middleware stack (the request id header, status tracking, CORS),
as any response's does. The body messages, one per event and so one per token, go straight to the connection's own
``send`` when the HTTP protocol offers it in the scope (``BODY_SEND``, ``server/http/protocol.py``) and the app
allows it (``allow_body_lane``: every installed middleware passes body messages through unread); each event would
otherwise pass four ``send`` wrappers (Starlette's two exception handlers, its error middleware, the request log).
Without the extension (an in-process ASGI client) the body takes the stack's ``send`` like the head; the bytes are
the same either way.

A client that goes away must stop its stream at once, even while it waits for a token (a long prefill): the engine
request is aborted as the stream closes. Starlette's response runs the stream in a task of an anyio task group beside a
task reading ``receive`` for the disconnect; where the protocol offers ``DISCONNECT_WATCH`` as well, the stream runs in
a plain task of its own and the protocol's callback for the lost connection cancels it instead (no task group, no
task reading ``receive``, no ``receive`` pending; some 80 microseconds less per streamed request).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from server import requestlog

BODY_SEND = "gptoss.http.body_send"  # scope extension: the connection's own ``send``
# scope extension: ``watch(callback)`` calls ``callback`` when the connection is lost; it returns the unwatch function
DISCONNECT_WATCH = "gptoss.http.watch_disconnect"
DisconnectWatch = Callable[[Callable[[], None]], Callable[[], None]]


def offer_body_send(scope: dict[str, Any], send: Send, watch: DisconnectWatch | None = None) -> None:
    """The protocol's side: put the connection's ``send`` (and its disconnect watch) in the request's scope."""
    extensions = scope.setdefault("extensions", {})
    extensions[BODY_SEND] = send
    if watch is not None:
        extensions[DISCONNECT_WATCH] = watch


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
        if body_send is None or not _lane_open(scope.get("app")):
            await super().__call__(scope, receive, send)
            return
        self._body_send = body_send
        watch = extensions.get(DISCONNECT_WATCH)
        if watch is None:
            await super().__call__(scope, receive, send)
            return
        await self._stream_until_disconnect(send, watch)
        if self.background is not None:
            await self.background()

    async def _stream_until_disconnect(self, send: Send, watch: DisconnectWatch) -> None:
        """``stream_response`` in a task of its own, cancelled by the protocol when the connection is lost (then it
        ends quietly, as Starlette's task group ends it). The task keeps the stack short: each wake-up of the stream
        (one per token) resumes its own few frames, not also the dozen of the middleware stack above this one."""
        stream = asyncio.ensure_future(self.stream_response(send))
        cut = False

        def on_disconnect() -> None:
            nonlocal cut
            cut = True
            stream.cancel()

        unwatch = watch(on_disconnect)
        try:
            await stream  # cancelling this task cancels the stream too
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not cut or (task is not None and task.cancelling()):
                raise
            record = requestlog.current()
            if record is not None and record.status is None:
                record.status = 499  # gone before the response started (its head was never sent)
        finally:
            unwatch()

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
