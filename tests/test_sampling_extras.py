"""vLLM's extra sampling fields on /v1 and E2E reach the engine instead of being dropped: ``stop_token_ids`` end the
answer at that token (``stop_reason`` is the token id, as vLLM reports it), ``include_stop_str_in_output`` keeps the
stop string, ``bad_words`` and ``allowed_token_ids`` go to the engine's sampling parameters, ``include_reasoning:
false`` drops the reasoning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.harmony.encoding import get_encoding
from tests.helpers import API_KEY, LiveServer, WatchedEngine, scripted_settings, threaded_server

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
PATHS = ("/v1/chat/completions", "/project/p-1/genai/gpt_oss_120b/v1/chat/completions")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, WatchedEngine]]:
    settings = scripted_settings(Path(tmp_path_factory.mktemp("extras")))
    engine = WatchedEngine(settings.engine.scripted)
    with threaded_server(settings, engine) as live:
        yield live, engine


def chat(live: LiveServer, path: str, **fields: object) -> dict:
    model = "gpt_oss_120b" if path.startswith("/project") else "gpt-oss-120b"
    body = {"model": model, "messages": [{"role": "user", "content": "alpha beta gamma"}], **fields}
    r = httpx.post(live.base_url + path, json=body, headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", PATHS)
def test_stop_token_ids_end_the_answer(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    (beta,) = get_encoding().encode(" beta", disallowed_special=())
    choice = chat(live, path, stop_token_ids=[beta])["choices"][0]
    # the answer ends at the token, which vLLM's harmony parser (fed every output token) keeps in the text
    assert choice["message"]["content"] == "alpha beta"
    assert (choice["finish_reason"], choice["stop_reason"]) == ("stop", beta)


@pytest.mark.parametrize("path", PATHS)
def test_include_stop_str_in_output_keeps_the_stop_string(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    kept = chat(live, path, stop=[" gamma"], include_stop_str_in_output=True)["choices"][0]
    cut = chat(live, path, stop=[" gamma"])["choices"][0]
    assert kept["message"]["content"] == "alpha beta gamma" and cut["message"]["content"] == "alpha beta"
    assert kept["stop_reason"] == cut["stop_reason"] == " gamma"


def test_bad_words_and_allowed_token_ids_reach_the_engine(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, engine = server
    chat(live, PATHS[0], bad_words=["gamma"], allowed_token_ids=[1, 2, 3])
    sampling = engine.requests[-1].sampling
    assert (sampling.bad_words, sampling.allowed_token_ids) == (["gamma"], [1, 2, 3])


@pytest.mark.parametrize("path", PATHS)
def test_include_reasoning_false_drops_the_reasoning(server: tuple[LiveServer, WatchedEngine], path: str) -> None:
    live, _ = server
    model = "gpt_oss_120b" if path.startswith("/project") else "gpt-oss-120b"
    body = {"model": model, "messages": [{"role": "user", "content": "reason"}]}
    url = live.base_url + path

    def reasoning(message: dict) -> object:
        return message.get("reasoning", message.get("reasoning_content"))

    shown = httpx.post(url, json=body, headers=HEADERS, timeout=30).json()["choices"][0]["message"]
    hidden = httpx.post(url, json={**body, "include_reasoning": False}, headers=HEADERS, timeout=30).json()
    message = hidden["choices"][0]["message"]
    assert reasoning(shown) == "User says hi. Reply politely."
    assert reasoning(message) is None and message["content"] == "Hello! How can I help?"
    stream = httpx.post(url, json={**body, "include_reasoning": False, "stream": True}, headers=HEADERS, timeout=30)
    chunks = [json.loads(line[6:]) for line in stream.text.split("\n\n") if line.startswith("data: {")]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert not [d for d in deltas if reasoning(d)]
    assert "".join(d.get("content") or "" for d in deltas) == "Hello! How can I help?"
