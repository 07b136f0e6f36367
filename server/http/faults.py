"""The HTTP side of fault injection (installed only with ``testing.faults_enabled``).

``FaultMiddleware`` binds each request's target (the wire API answering it, its path, its fault header) for the core's
plan (``server/faults/``), and carries out a ``cut``: when ``ConnectionCut`` comes up through the app it returns
without ending the response (after sending a response head if none was sent), so the server closes the connection
and the client sees a body cut short: no stream terminator, no complete JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.datastructures import Headers

from server.faults.inject import ConnectionCut
from server.faults.plan import FaultTarget, bind_target, unbind_target

log = logging.getLogger("server.faults")

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class FaultMiddleware:
    def __init__(self, app: Any, *, api_of: Callable[[str, Mapping[str, str]], str | None], header: str) -> None:
        self.app = app
        self.api_of = api_of
        self.header = header.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope.get("path", "")
        token = bind_target(FaultTarget(self.api_of(path, headers), path, headers.get(self.header)))
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ConnectionCut as cut:
            log.info("%s: closing the connection of %s %s", cut, scope.get("method", ""), path)
            if not started:
                head = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 200, "headers": head})
        finally:
            unbind_target(token)
