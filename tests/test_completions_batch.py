"""``POST /v1/completions`` with a batch of prompts and ``n`` choices, as vLLM's ``serving_completion`` answers them,
through the openai SDK and raw HTTP against a live scripted server: choice ``i * n + j`` is prompt ``i``'s ``j``-th,
usage counts each prompt once and every choice's output, a stream interleaves the choices with their own text offsets,
echoes and finishes, the server's bounds on ``n`` and on the batch, all-or-nothing admission, a failing choice ending
the answer as vLLM ends it, and the OpenAI route's harmony-decoded output switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from server.errors import EngineUnavailableError
from server.harmony.encoding import encode_prompt
from server.harmony.plain import full_text
from tests.contract import sse_payloads
from tests.helpers import FailingEngine, LiveServer, scripted_settings, threaded_server
from tests.test_completions import BODY, CHUNK, PROMPT, TEXT

MODEL = "gpt-oss-120b"
OTHER = "<|start|>user<|message|>Echo me<|end|><|start|>assistant"  # no rule: the scripted engine echoes it
PROMPTS = [PROMPT, OTHER]


@pytest.fixture
def client(scripted_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted_server.base_url + "/v1", api_key=scripted_server.api_key, max_retries=0)


def post(live: LiveServer, body: dict[str, Any], path: str = "/v1/completions") -> requests.Response:
    headers = {"Authorization": f"Bearer {live.api_key}"}
    return requests.post(live.base_url + path, json={"model": MODEL, **body}, headers=headers, timeout=60)


def chunks_of(r: requests.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    payloads, blocks = sse_payloads(r.text)
    assert blocks[-1] == "data: [DONE]"
    return payloads


def test_a_batch_with_n_answers_prompts_times_n_choices(client: openai.OpenAI) -> None:
    alone = [client.completions.create(model=MODEL, prompt=p, max_tokens=200) for p in PROMPTS]
    assert alone[0].choices[0].text == TEXT and alone[1].choices[0].text == "finalEcho me"
    r = client.completions.create(model=MODEL, prompt=PROMPTS, n=2, max_tokens=200)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert [c.text for c in r.choices] == [TEXT, TEXT, "finalEcho me", "finalEcho me"]
    assert all(c.finish_reason == "stop" for c in r.choices)
    assert r.usage is not None and alone[0].usage is not None and alone[1].usage is not None
    assert r.usage.prompt_tokens == alone[0].usage.prompt_tokens + alone[1].usage.prompt_tokens  # each prompt once
    assert r.usage.completion_tokens == 2 * (alone[0].usage.completion_tokens + alone[1].usage.completion_tokens)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.id.startswith("cmpl-")


def test_a_batch_of_token_id_prompts_echoes_each_its_own(scripted_server: LiveServer) -> None:
    ids = [encode_prompt(p) for p in PROMPTS]
    r = post(scripted_server, {"prompt": ids, "max_tokens": 200, "echo": True, "return_token_ids": True, "n": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    BODY.validate(body)
    choices = body["choices"]
    assert [c["prompt_token_ids"] for c in choices] == [ids[0], ids[0], ids[1], ids[1]]
    assert [c["text"] for c in choices] == [TEXT, TEXT, "finalEcho me", "finalEcho me"]  # return_token_ids: no echo
    r = post(scripted_server, {"prompt": ids, "max_tokens": 0, "echo": True})
    assert [c["text"] for c in r.json()["choices"]] == [full_text(ids[0]), full_text(ids[1])]


def test_a_streamed_batch_interleaves_choices_with_their_own_state(
    client: openai.OpenAI, scripted_server: LiveServer
) -> None:
    whole = client.completions.create(model=MODEL, prompt=PROMPTS, n=2, max_tokens=200, echo=True, logprobs=1)
    body = {"prompt": PROMPTS, "n": 2, "max_tokens": 200, "echo": True, "logprobs": 1, "stream": True}
    payloads = chunks_of(post(scripted_server, {**body, "stream_options": {"include_usage": True}}))
    for payload in payloads:
        CHUNK.validate(payload)
    *chunks, last = payloads
    assert last["choices"] == [] and whole.usage is not None
    assert last["usage"]["prompt_tokens"] == whole.usage.prompt_tokens
    assert last["usage"]["completion_tokens"] == whole.usage.completion_tokens
    assert all(len(c["choices"]) == 1 for c in chunks) and len({c["id"] for c in payloads}) == 1
    for index, expected in enumerate(whole.choices):
        mine = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        assert "".join(c["text"] for c in mine) == expected.text  # the echo of its own prompt, then its answer
        assert mine[0]["text"].startswith(PROMPTS[index // 2])
        assert [c["finish_reason"] for c in mine if c["finish_reason"]] == ["stop"] and mine[-1]["finish_reason"]
        offsets = [o for c in mine for o in c["logprobs"]["text_offset"]]
        tokens = [t for c in mine for t in c["logprobs"]["tokens"]]
        assert expected.logprobs is not None
        assert offsets == expected.logprobs.text_offset and tokens == expected.logprobs.tokens  # one running offset
        assert offsets[0] == 0
    stream = client.completions.create(model=MODEL, prompt=PROMPTS, n=2, max_tokens=200, stream=True)
    texts: dict[int, str] = {}
    for chunk in stream:
        texts[chunk.choices[0].index] = texts.get(chunk.choices[0].index, "") + chunk.choices[0].text
    assert texts == {0: TEXT, 1: TEXT, 2: "finalEcho me", 3: "finalEcho me"}


def test_continuous_usage_counts_each_choice_against_its_own_prompt(scripted_server: LiveServer) -> None:
    body = {"prompt": PROMPTS, "max_tokens": 200, "stream": True}
    options = {"include_usage": True, "continuous_usage_stats": True}
    *chunks, _ = chunks_of(post(scripted_server, {**body, "stream_options": options}))
    lengths = [len(encode_prompt(p)) for p in PROMPTS]
    for chunk in chunks:
        assert chunk["usage"]["prompt_tokens"] == lengths[chunk["choices"][0]["index"]]


def test_the_batch_bound_and_all_or_nothing_admission(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    settings.limits.max_batch_requests = 4
    settings.limits.max_concurrent_requests = 3
    with threaded_server(settings) as live:
        r = post(live, {"prompt": [PROMPT] * 3, "n": 2})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
        assert "at most 4 generations" in r.json()["error"]["message"]
        r = post(live, {"prompt": [PROMPT] * 2, "n": 2})  # within the bound, past the admission slots
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
        assert live.app.state.ctx.service.active_requests == 0  # the slots it took were given back
        assert len(post(live, {"prompt": [PROMPT] * 3}).json()["choices"]) == 3


def test_a_failing_choice_ends_the_answer(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path, token_delay_s=0.005)
    died = EngineUnavailableError("The engine died.")
    engine = FailingEngine(settings.engine.scripted, after=3, error=died, fails=lambda id_: id_.endswith("-1"))
    with threaded_server(settings, engine) as live:  # the second prompt's requests fail after 3 tokens
        body = {"prompt": PROMPTS, "max_tokens": 200}
        r = post(live, body)
        assert r.status_code == 503 and r.json()["error"]["message"] == "The engine died."
        *chunks, error = chunks_of(post(live, {**body, "stream": True}))
        assert error == {"error": {"message": "The engine died.", "type": "server_error", "param": None, "code": None}}
        assert not [c for c in chunks if c["choices"][0]["index"] == 1 and c["choices"][0]["finish_reason"]]


def test_harmony_output_is_a_route_setting(tmp_path: Path, scripted_server: LiveServer) -> None:
    off = post(scripted_server, {"prompt": PROMPT, "max_tokens": 200}).json()["choices"][0]
    assert off["text"] == TEXT and "reasoning" not in off  # vLLM's plain text by default
    settings = scripted_settings(tmp_path)
    settings.providers.openai.completions_harmony_output = True  # type: ignore[attr-defined]
    with threaded_server(settings) as live:
        r = post(live, {"prompt": PROMPTS, "max_tokens": 200})
        assert r.status_code == 200, r.text
        first, second = r.json()["choices"]
        assert list(first)[:3] == ["index", "text", "reasoning"]
        assert first["text"] == "Hello! How can I help?" and first["reasoning"] == "User says hi. Reply politely."
        assert second["text"] == "Echo me" and second["reasoning"] is None
        *chunks, _ = chunks_of(post(live, {"prompt": PROMPT, "max_tokens": 200, "stream": True}))
        assert "".join(c["choices"][0]["text"] for c in chunks) == "Hello! How can I help?"
        assert "".join(c["choices"][0].get("reasoning", "") for c in chunks) == "User says hi. Reply politely."
        e2e = "/project/p-5915/genai/gpt_oss_120b/v1/completions"  # E2E runs vLLM: plain text whatever this says
        r = post(live, {"prompt": PROMPT, "max_tokens": 200, "model": "gpt_oss_120b"}, e2e)
        assert r.json()["choices"][0]["text"] == TEXT
