"""ASGI middleware: a request id on every request and response, and one log line per request.

The id comes from the client's ``X-Request-Id`` (when it is a sane token) or is generated, and is returned in the
``X-Request-Id`` response header on every route. Probe paths (``/live``, ``/health``, ``/metrics``) are not logged
unless ``server.log_probes``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from starlette.datastructures import Headers

from server import metrics, requestlog
from server.requestlog import RequestRecord

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

PROBES = frozenset({"/live", "/health", "/metrics"})
_CLIENT_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _CLIENT_ID.fullmatch(value):
            return value.decode()
    return uuid.uuid4().hex


class RequestLogMiddleware:
    def __init__(
        self, app: Any, *, api_of: Callable[[str, Mapping[str, str]], str | None], fmt: str, log_probes: bool
    ) -> None:
        self.app = app
        self.api_of = api_of
        self.fmt = fmt
        self.log_probes = log_probes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        record = RequestRecord(request_id(scope), scope.get("method", ""), path)
        header = (b"x-request-id", record.request_id.encode())
        scope.setdefault("state", {})["request_id"] = record.request_id

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = requestlog.bind(record)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            requestlog.unbind(token)
            if record.status is None:
                record.status = 500
            if path not in PROBES:
                record.api = self.api_of(path, Headers(scope=scope))
                requestlog.close(record)
                metrics.front_end().observe(record)
            if self.log_probes or path not in PROBES:
                requestlog.emit(record, self.fmt)
