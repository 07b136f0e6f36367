"""Admission control and shutdown behaviour on a live server (scripted engine)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import requests

from tests.helpers import scripted_settings, threaded_server


def test_over_capacity_gets_429_with_retry_after(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path, token_delay_s=0.02)
    settings.limits.max_concurrent_requests = 1
    with threaded_server(settings) as live:
        headers = {"Authorization": f"Bearer {live.api_key}"}
        body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "long"}], "stream": True}
        started = threading.Event()
        with (
            httpx.Client(timeout=30) as http,
            http.stream("POST", live.base_url + "/v1/chat/completions", headers=headers, json=body) as first,
        ):
            for line in first.iter_lines():
                if line.startswith("data: {"):
                    started.set()
                    # the first request holds the only slot: a second one is refused cheaply
                    r = requests.post(live.base_url + "/v1/chat/completions", headers=headers, json=body, timeout=10)
                    assert r.status_code == 429
                    assert r.headers["Retry-After"] == "1"
                    assert r.json()["error"]["type"] == "rate_limit_error"
                    # in each provider's own envelope
                    d = requests.post(
                        live.base_url + "/api/v1",
                        headers=headers,
                        json={"model": "openai/gpt-oss-120b", "data": {"messages": [{"role": "user", "content": "x"}]}},
                        timeout=10,
                    )
                    assert d.status_code == 429 and d.json()["success"] is False
                    break
        assert started.is_set()
        # once the first request is gone, the slot is free again
        ok = requests.post(
            live.base_url + "/v1/chat/completions",
            headers=headers,
            json={"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "hi"


def test_readiness_reports_loading_then_ready(tmp_path: Path) -> None:
    import asyncio

    from server.engine.scripted import ScriptedEngine

    class SlowStart(ScriptedEngine):
        async def start(self) -> None:
            await asyncio.sleep(1.0)
            await super().start()

    settings = scripted_settings(tmp_path)
    engine = SlowStart(settings.engine.scripted)
    import uvicorn

    from server.app import create_app
    from tests.helpers import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, engine), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        seen_loading = False
        for _ in range(200):
            try:
                live = httpx.get(base + "/live", timeout=5)
                health = httpx.get(base + "/health", timeout=5)
            except httpx.TransportError:
                threading.Event().wait(0.02)
                continue
            assert live.status_code == 200
            if health.status_code == 503:
                assert health.json()["status"] == "loading"
                seen_loading = True
                chat = httpx.post(
                    base + "/v1/chat/completions",
                    headers={"Authorization": "Bearer sk-test-0123456789abcdef"},
                    json={"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]},
                    timeout=5,
                )
                assert chat.status_code == 503 and chat.json()["error"]["type"] == "service_unavailable"
            else:
                assert health.status_code == 200 and health.json()["status"] == "ok"
                break
            threading.Event().wait(0.05)
        assert seen_loading
    finally:
        server.should_exit = True
        thread.join(10)
