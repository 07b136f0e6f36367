"""Admission control and shutdown behaviour on a live server (scripted engine)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import requests

from tests.helpers import API_KEY, scripted_settings, threaded_server, wait_ready


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
    """While the engine loads, liveness is 200 and readiness 503 ("loading"), chat requests 503; then ready."""
    import asyncio

    from server.engine.scripted import ScriptedEngine

    release = threading.Event()

    class GatedStart(ScriptedEngine):
        async def start(self) -> None:
            while not release.is_set():  # the test decides when loading is over
                await asyncio.sleep(0.01)
            await super().start()

    settings = scripted_settings(tmp_path)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    chat = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]}
    with threaded_server(settings, GatedStart(settings.engine.scripted), wait=False) as live:
        for _ in range(500):  # until the port answers
            try:
                health = httpx.get(live.base_url + "/health", timeout=5)
                break
            except httpx.TransportError:
                threading.Event().wait(0.02)
        assert health.status_code == 503 and health.json()["status"] == "loading"
        assert httpx.get(live.base_url + "/live", timeout=5).status_code == 200
        r = httpx.post(live.base_url + "/v1/chat/completions", headers=headers, json=chat, timeout=5)
        assert r.status_code == 503 and r.json()["error"]["type"] == "service_unavailable"
        release.set()
        wait_ready(live.base_url, 30)
        assert httpx.get(live.base_url + "/health", timeout=5).json()["status"] == "ok"
        assert (
            httpx.post(live.base_url + "/v1/chat/completions", headers=headers, json=chat, timeout=10).status_code
            == 200
        )


def test_simultaneous_requests_cannot_all_pass_admission(tmp_path: Path) -> None:
    """Check and reservation are one step: a burst gets exactly the configured number of slots."""
    from concurrent.futures import ThreadPoolExecutor

    settings = scripted_settings(tmp_path, token_delay_s=0.05)
    settings.limits.max_concurrent_requests = 2
    with threaded_server(settings) as live:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "long"}], "max_tokens": 60}
        barrier = threading.Barrier(24)

        def send(stream: bool) -> int:
            barrier.wait()
            r = requests.post(
                live.base_url + "/v1/chat/completions", headers=headers, json={**body, "stream": stream}, timeout=30
            )
            return r.status_code

        with ThreadPoolExecutor(24) as pool:
            codes = list(pool.map(send, [i % 2 == 0 for i in range(24)]))
        # every request lasts 3 s (60 tokens, 50 ms each); all 24 arrive well within that
        assert codes.count(200) == 2 and codes.count(429) == 22, codes
        assert live.app.state.ctx.service.active_requests == 0


def test_sigterm_drains_then_aborts_cleanly_and_exits_0(tmp_path: Path) -> None:
    """A real server process: SIGTERM mid-stream; new requests get 503 while draining; the stream that outlives
    the drain timeout ends with finish_reason "abort" and [DONE]; the process exits with status 0."""
    import json
    import os
    import signal
    import subprocess
    import sys

    from tests.helpers import REPO, SCRIPT_RULES, free_port

    port = free_port()
    config = tmp_path / "c.yaml"
    scripted = {"mode": "replay", "token_delay_s": 0.02, "rules": SCRIPT_RULES}
    settings = {"engine": {"kind": "scripted", "scripted": scripted}, "server": {"drain_timeout_s": 1.0}}
    config.write_text(json.dumps(settings))  # JSON is YAML
    env = {**os.environ, "GPTOSS_API_KEYS": API_KEY, "GPTOSS_SERVER__PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 60, proc)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "long"}], "stream": True}
        lines: list[str] = []
        with (
            httpx.Client(timeout=30) as http,
            http.stream("POST", base + "/v1/chat/completions", headers=headers, json=body) as r,
        ):
            for line in r.iter_lines():
                lines.append(line)
                if len(lines) == 6:
                    proc.send_signal(signal.SIGTERM)
                    threading.Event().wait(0.3)
                    refused = httpx.post(base + "/v1/chat/completions", headers=headers, json=body, timeout=10)
                    assert refused.status_code == 503
        events = [line for line in lines if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
        finish = json.loads(events[-2][len("data: ") :])
        assert finish["choices"][0]["finish_reason"] == "abort"
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
