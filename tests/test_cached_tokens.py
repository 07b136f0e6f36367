"""Prompt tokens served from the prefix cache, in each provider's own field: OpenAI/vLLM's and AI/ML API's
``usage.prompt_tokens_details.cached_tokens``, dat1's ``timings.cache_n`` and ``prompt_n`` (eras B/C) — with the
scripted engine's prefix-cache model, and with the real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from routes.dat1.settings import Dat1Settings
from tests.helpers import API_KEY, LiveServer, scripted_settings, threaded_server

LONG = " ".join(f"word{i}" for i in range(300))  # a prompt of a few hundred tokens


def _chat(live: LiveServer, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    r = requests.post(live.base_url + path, json=body, headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _repeat(live: LiveServer, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    _chat(live, path, body, headers)  # fills the cache
    return _chat(live, path, body, headers)


BEARER = {"Authorization": f"Bearer {API_KEY}"}
MESSAGES = [{"role": "user", "content": LONG}]


def check_fields(live: LiveServer, model: str = "gpt-oss-120b") -> None:
    r = _repeat(live, "/v1/chat/completions", {"model": model, "messages": MESSAGES, "max_tokens": 4}, BEARER)
    cached = r["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert 0 < cached < r["usage"]["prompt_tokens"]
    r = _repeat(
        live, "/chat/completions", {"model": "openai/gpt-oss-120b", "messages": MESSAGES, "max_tokens": 4}, BEARER
    )
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
    r = _repeat(
        live,
        "/api/v1/collection/gpt-120-oss/invoke-chat",
        {"messages": MESSAGES, "max_tokens": 4},
        {"X-API-Key": API_KEY},
    )
    timings = r["timings"]
    assert timings["cache_n"] > 0 and timings["prompt_n"] == r["usage"]["prompt_tokens"] - timings["cache_n"]


def test_cached_tokens_with_the_scripted_prefix_cache(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path, prefix_cache=True)
    settings.providers.dat1 = Dat1Settings(stream_era="B")  # the era whose timings carry cache_n
    with threaded_server(settings) as live:
        check_fields(live)
        first = _chat(
            live,
            "/v1/chat/completions",
            {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "fresh " * 50}]},
            BEARER,
        )
        assert (
            first["usage"]["prompt_tokens_details"] is None
            or first["usage"]["prompt_tokens_details"]["cached_tokens"] < first["usage"]["prompt_tokens"]
        )


@pytest.mark.engine
def test_cached_tokens_with_the_real_engine(vllm_server: LiveServer) -> None:
    r = _repeat(
        vllm_server, "/v1/chat/completions", {"model": "gpt-oss-120b", "messages": MESSAGES, "max_tokens": 4}, BEARER
    )
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] > 0  # vLLM's prefix cache, reported per request
    r = _repeat(
        vllm_server,
        "/chat/completions",
        {"model": "openai/gpt-oss-120b", "messages": MESSAGES, "max_tokens": 4},
        BEARER,
    )
    assert r["usage"]["prompt_tokens_details"]["cached_tokens"] > 0
