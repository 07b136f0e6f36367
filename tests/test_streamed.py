"""Streamed bodies' short way to the socket (``server/http/streamed.py``), on the production server over 127.0.0.1.

A streamed answer's head passes the whole middleware stack; its body goes straight to the connection only while every
installed middleware is one known to pass body messages through. A middleware that may read bodies closes the lane:
it then sees every byte the client gets.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from server.app import create_app
from server.http.faults import FaultMiddleware
from server.http.framing import FramingErrorMiddleware
from server.http.requestlog import RequestLogMiddleware
from server.http.streamed import allow_body_lane, body_lane_allowed
from tests.helpers import API_KEY, scripted_settings, threaded_server

CHAT = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "say something"}], "stream": True}


class BodyCounter:
    """Counts the response heads and body bytes that pass it (of the answers, not of the health probes)."""

    def __init__(self, app: Any, seen: dict[str, int]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("path") == "/health":
            await self.app(scope, receive, send)
            return

        async def counting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.seen["heads"] += 1
            elif message["type"] == "http.response.body":
                self.seen["bytes"] += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting)


def stream(base: str, path: str = "/v1/chat/completions", **fields: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    response = httpx.post(base + path, json={**CHAT, **fields}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_the_server_s_own_middlewares_leave_the_lane_open(tmp_path: Path) -> None:
    assert body_lane_allowed(create_app(scripted_settings(tmp_path)))
    settings = scripted_settings(tmp_path)
    cors = settings.server.model_copy(update={"cors_allow_origins": ["https://app.example"]})
    faults = settings.testing.model_copy(update={"faults_enabled": True})
    app = create_app(settings.model_copy(update={"server": cors, "testing": faults}))
    kinds = {middleware.cls for middleware in app.user_middleware}
    assert {FaultMiddleware, FramingErrorMiddleware, RequestLogMiddleware} <= kinds and len(kinds) == 4
    assert body_lane_allowed(app)
    app.add_middleware(GZipMiddleware)
    assert not body_lane_allowed(app)


@pytest.mark.parametrize("transparent", [True, False], ids=["lane", "no-lane"])
def test_a_streamed_body_passes_the_stack_only_without_the_lane(tmp_path: Path, transparent: bool) -> None:
    seen = {"heads": 0, "bytes": 0}

    def prepare(app: FastAPI) -> None:
        app.add_middleware(BodyCounter, seen=seen)
        if transparent:  # declared as passing bodies through: the lane stays open
            allow_body_lane(app, {*app.state.body_transparent, BodyCounter})

    with threaded_server(scripted_settings(tmp_path), prepare=prepare) as live:
        response = stream(live.base_url)
        ndjson = stream(live.base_url, "/api/chat", model="gpt-oss:120b")
    body = response.content
    assert body.startswith(b"data: {") and body.endswith(b"data: [DONE]\n\n")
    assert response.headers["x-request-id"] and response.headers["content-type"].startswith("text/event-stream")
    assert ndjson.content.endswith(b"\n")
    assert b'"done":true' in ndjson.content.splitlines()[-1]
    assert seen["heads"] == 2  # every head passes the stack
    # the bodies: none of their bytes pass a middleware on the lane; every byte does without it
    assert seen["bytes"] == (0 if transparent else len(body) + len(ndjson.content))


def _post_chat(base_url: str, chat: dict[str, Any]) -> socket.socket:
    """A streamed chat request sent over a raw socket (so the test decides when the client goes): the socket."""
    body = httpx.Request("POST", "/", json=chat).content
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    address = urlsplit(base_url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    sock.sendall(head.encode() + body)
    return sock


@pytest.mark.parametrize("transparent", [True, False], ids=["lane", "no-lane"])
def test_a_client_gone_while_its_stream_waits_for_a_token_aborts_at_once(tmp_path: Path, transparent: bool) -> None:
    """No byte is due for seconds (a slow engine step), so no write can notice the lost connection: on the lane the
    protocol's watch cancels the stream, without it Starlette's task reading ``receive`` does; either way the engine
    request is aborted well before its next token."""

    def prepare(app: FastAPI) -> None:
        if not transparent:
            app.add_middleware(GZipMiddleware)  # a middleware that may read bodies closes the lane

    with threaded_server(scripted_settings(tmp_path, token_delay_s=5.0), prepare=prepare) as live:
        engine = live.app.state.ctx.engine
        with _post_chat(live.base_url, CHAT) as sock:
            got = b""
            while b"data: {" not in got:  # the role chunk comes before the engine's first token
                got += sock.recv(65536)
            assert engine.num_running() == 1
        gone = time.monotonic()
        while engine.num_running() and time.monotonic() - gone < 3:
            time.sleep(0.01)
        assert engine.num_running() == 0, "the engine request outlived its client"
        assert time.monotonic() - gone < 2
        assert live.app.state.ctx.service.active_requests == 0


def test_a_client_gone_before_its_stream_starts_is_never_streamed(tmp_path: Path) -> None:
    """The client sends its request and leaves while the prompt is rendered (here in the render worker, which
    starts on first use): the stream must not start for nobody. The engine never runs the request, its slot is
    freed, and it is counted as a disconnect (499), not as a success or a server error."""
    settings = scripted_settings(tmp_path, token_delay_s=5.0)
    settings.limits.render_inline_chars = 1024
    with threaded_server(settings) as live:
        ctx = live.app.state.ctx

        def counts() -> dict[str, float]:
            """The OpenAI route's requests by status (the registry is the process's: other tests count too)."""
            found: dict[str, float] = {}
            for line in httpx.get(f"{live.base_url}/metrics").text.splitlines():
                if line.startswith('gptoss:requests_total{api="openai"'):
                    status = line.split('status="', 1)[1].split('"', 1)[0]
                    found[status] = found.get(status, 0.0) + float(line.rsplit(" ", 1)[1])
            return found

        before = counts()
        chat = {**CHAT, "messages": [{"role": "user", "content": "say something " * 400}]}
        _post_chat(live.base_url, chat).close()  # sent, and gone at once
        gone = time.monotonic()
        while counts() == before and time.monotonic() - gone < 15:
            time.sleep(0.05)
        after = counts()
        changed = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
        assert changed == {"499": 1.0}
        assert ctx.engine.num_running() == 0
        assert ctx.service.active_requests == 0
