"""Work per request is bounded before anything expensive runs, output is capped, and admission is bounded by the
prompt tokens waiting for prefill as well as by the request count (scripted engine, live server)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import requests

from server.harmony.pool import RenderPool, prompt_chars
from server.harmony.render import HarmonyRenderer, RenderOptions
from server.types import ChatMessage, ChatRequest
from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import API_KEY, LiveServer, scripted_settings, threaded_server

CASES = all_cases()


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    settings = scripted_settings(tmp_path_factory.mktemp("bounded"))
    limits = settings.limits
    limits.max_messages, limits.max_tools, limits.max_prompt_chars = 8, 2, 4096
    limits.max_output_tokens = 100
    with threaded_server(settings) as live:
        yield live  # type: ignore[misc]


def _post(live: LiveServer, case: ProviderCase, messages: list[dict[str, str]], **extra: object) -> requests.Response:
    body = case.body(messages, False, dict(extra))
    return requests.post(live.base_url + case.chat_path, json=body, headers=case.auth_headers(API_KEY), timeout=30)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_too_many_messages_is_400_before_rendering(bounded: LiveServer, case: ProviderCase) -> None:
    case.check_error(_post(bounded, case, [{"role": "user", "content": "hi"}] * 9), 400)
    assert _post(bounded, case, [{"role": "user", "content": "hi"}] * 8).status_code == 200


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_too_much_prompt_text_is_400(bounded: LiveServer, case: ProviderCase) -> None:
    case.check_error(_post(bounded, case, [{"role": "user", "content": "word " * 1000}]), 400)


@pytest.mark.parametrize("case", [c for c in CASES if c.name != "dataoorts"], ids=lambda c: c.name)
def test_output_over_the_hard_cap(bounded: LiveServer, case: ProviderCase) -> None:
    """Over ``limits.max_output_tokens``: a 400, except on dat1 and Ollama, which clamp as llama-server and Ollama
    do, and on Anthropic's Messages API, which clamps (Claude Code asks for 32,000 whatever the server allows)."""
    r = _post(bounded, case, [{"role": "user", "content": "hi"}], max_tokens=101)
    if case.name.startswith(("dat1", "ollama", "anthropic")):
        assert r.status_code == 200, r.text
    else:
        case.check_error(r, 400)


def test_min_tokens_over_max_tokens_is_400(bounded: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "min_tokens": 9}
    for path in ("/v1/chat/completions", "/openai/v1/chat/completions"):
        r = requests.post(bounded.base_url + path, json=body, headers=headers, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["param"] == "min_tokens", r.text


def test_omitted_max_tokens_gets_the_default_cap(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    settings.limits.default_max_tokens = 7
    with threaded_server(settings) as live:
        body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "long"}]}
        r = requests.post(
            live.base_url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        assert r.status_code == 200
        assert r.json()["usage"]["completion_tokens"] == 7 and r.json()["choices"][0]["finish_reason"] == "length"


def test_admission_is_bounded_by_queued_prompt_tokens(tmp_path: Path) -> None:
    """A request whose prompt would push the prefill backlog past the limit gets 429 while another one waits."""
    from server.engine.base import GenerationRequest
    from server.engine.scripted import ScriptedEngine

    release = threading.Event()

    class HeldEngine(ScriptedEngine):
        """Holds every request before its first step, as a busy engine's prefill queue would."""

        async def generate(self, request: GenerationRequest):  # type: ignore[override]
            while not release.is_set():
                await asyncio.sleep(0.01)
            async for step in super().generate(request):
                yield step

    settings = scripted_settings(tmp_path)
    with threaded_server(settings) as probe:  # the prompt size of one request, measured on a plain server
        body = {
            "model": "gpt-oss-120b",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "return_token_ids": True,
        }
        r = requests.post(
            probe.base_url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        prompt = len(r.json()["prompt_token_ids"])
    settings.limits.max_queued_prompt_tokens = prompt + prompt // 2  # room for one waiting request, not two
    with threaded_server(settings, HeldEngine(settings.engine.scripted)) as live, httpx.Client(timeout=30) as http:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        stream_body = {**body, "stream": True}
        with http.stream("POST", live.base_url + "/v1/chat/completions", headers=headers, json=stream_body) as first:
            deadline = time.monotonic() + 10
            while live.app.state.ctx.service.active_requests == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            second = requests.post(live.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
            assert second.status_code == 429 and second.headers["Retry-After"] == "1", second.text
            assert "prompt tokens" in second.json()["error"]["message"]
            release.set()
            assert "[DONE]" in "".join(first.iter_text())
        third = requests.post(live.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
        assert third.status_code == 200  # the backlog drained once prefill began


def _conversation(n: int) -> ChatRequest:
    messages = [ChatMessage(role="user" if i % 2 == 0 else "assistant", content=f"turn {i} " * 40) for i in range(n)]
    return ChatRequest(messages=messages)


def test_large_prompts_render_in_a_worker_with_the_same_tokens() -> None:
    renderer = HarmonyRenderer(RenderOptions(conversation_start_date="2026-01-15"))
    request = _conversation(400)
    pool = RenderPool(renderer, inline_chars=1000)
    ticks: list[int] = [0]

    async def run() -> tuple[list[int], int, int]:
        async def tick() -> None:
            while True:
                await asyncio.sleep(0)
                ticks[0] += 1

        ticker = asyncio.create_task(tick())
        await pool.render(request, prompt_chars(request))  # starts the worker
        ticks[0] = 0
        inline = renderer.render(request)  # on the loop: nothing else runs meanwhile
        during_inline = ticks[0]
        ids = await pool.render(request, prompt_chars(request))
        ticker.cancel()
        assert ids == inline
        return ids, during_inline, ticks[0]

    try:
        _, during_inline, during_worker = asyncio.run(run())
    finally:
        pool.close()
    assert during_inline == 0 and during_worker > 0  # the loop kept running while the worker rendered


@pytest.mark.parametrize(("count", "status"), [(110_000, 413), (50_000, 400)])
def test_a_huge_message_list_on_dat1_is_refused_before_parsing(bounded: LiveServer, count: int, status: int) -> None:
    """dat1's llama-server body has no message cap of its own: 110,000 messages (3.4 MB) are over the body limit and
    refused before parsing; 50,000 (1.6 MB) are parsed and refused before the messages are read; /live keeps
    answering meanwhile (latencies printed)."""
    # encoded before the probe starts: encoding 110,000 objects holds this process's GIL for a while too
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}] * count}).encode()
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            assert requests.get(bounded.base_url + "/live", timeout=30).status_code == 200
            latencies.append(time.perf_counter() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        started = time.perf_counter()
        r = requests.post(
            bounded.base_url + "/api/v1/collection/gpt-120-oss/invoke-chat",
            data=body,
            headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
            timeout=60,
        )
        took = time.perf_counter() - started
    finally:
        stop.set()
        prober.join(30)
    assert r.status_code == status, r.text
    assert ("messages" if status == 400 else "too large") in r.json()["error"]["message"]
    latencies.sort()
    p50, worst = latencies[len(latencies) // 2] * 1000, latencies[-1] * 1000
    print(f"refused in {took * 1000:.0f} ms; /live p50 {p50:.1f} ms, max {worst:.1f} ms")
