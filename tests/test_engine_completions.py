"""``/v1/completions`` and ``prompt_logprobs`` on the real vLLM engine (tiny random-weight checkpoint): a raw prompt
runs as given, greedy decoding streams the same text it answers whole, and the prompt's logprobs come back from vLLM
as it reports them (the first token None, then the prompt token first with its rank, then the top alternatives)."""

from __future__ import annotations

import math
from typing import Any

import openai
import pytest
import requests

from server.harmony.encoding import encode_prompt
from tests.helpers import LiveServer

pytestmark = pytest.mark.engine

PROMPT = "<|start|>user<|message|>Say something.<|end|><|start|>assistant"


@pytest.fixture(scope="module")
def client(vllm_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=vllm_server.base_url + "/v1", api_key=vllm_server.api_key, max_retries=0, timeout=180)


def test_completion_streamed_and_not(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="gpt-oss-120b", prompt=PROMPT, max_tokens=12, temperature=0, logprobs=2)
    choice = whole.choices[0]
    assert whole.usage is not None and whole.usage.prompt_tokens == len(encode_prompt(PROMPT))
    assert choice.finish_reason in ("stop", "length") and whole.usage.completion_tokens <= 12
    logprobs = choice.logprobs
    assert logprobs is not None and len(logprobs.tokens or []) == whole.usage.completion_tokens
    for value, top in zip(logprobs.token_logprobs or [], logprobs.top_logprobs or [], strict=True):
        assert value is not None and value <= 0.0 and math.isfinite(value)
        assert 1 <= len(top) <= 3  # the chosen token, then the two most likely
    stream = client.completions.create(
        model="gpt-oss-120b",
        prompt=PROMPT,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_prompt_logprobs_from_the_engine(vllm_server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {vllm_server.api_key}"}
    body = {"model": "gpt-oss-120b", "prompt": PROMPT, "max_tokens": 2, "prompt_logprobs": 2}
    r = requests.post(vllm_server.base_url + "/v1/completions", json=body, headers=headers, timeout=180)
    assert r.status_code == 200, r.text
    prompt = encode_prompt(PROMPT)
    entries = r.json()["choices"][0]["prompt_logprobs"]
    assert entries[0] is None and len(entries) == len(prompt)
    for token, entry in zip(prompt[1:], entries[1:], strict=True):
        assert next(iter(entry)) == str(token)  # the prompt token first, as vLLM orders them
        assert 2 <= len(entry) <= 3
        for value in entry.values():
            assert value["logprob"] <= 0.0 and isinstance(value["rank"], int) and value["rank"] >= 1
            assert isinstance(value["decoded_token"], str)
    chat = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    r = requests.post(
        vllm_server.base_url + "/v1/chat/completions", json={**chat, "prompt_logprobs": 0}, headers=headers, timeout=180
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["prompt_logprobs"][0] is None and len(answer["prompt_logprobs"]) == answer["usage"]["prompt_tokens"]
    assert all(len(entry) == 1 for entry in answer["prompt_logprobs"][1:])  # the prompt token alone


def test_a_batch_with_n_choices(client: openai.OpenAI) -> None:
    """Two prompts with n=2 each: four choices, prompt i's j-th at index 2i + j, usage counting each prompt once and
    every choice's tokens; streamed, each choice has its own tokens and finish, and usage after them all."""
    prompts = [PROMPT, "<|start|>user<|message|>Count to three.<|end|><|start|>assistant"]
    params: dict[str, Any] = {
        "model": "gpt-oss-120b",
        "prompt": prompts,
        "n": 2,
        "max_tokens": 6,
        "temperature": 1.0,
        "extra_body": {"return_token_ids": True, "ignore_eos": True},
    }
    whole = client.completions.create(seed=11, **params)
    assert [c.index for c in whole.choices] == [0, 1, 2, 3]
    assert [c.model_extra["prompt_token_ids"] for c in whole.choices] == [
        encode_prompt(p) for p in prompts for _ in "ab"
    ]
    assert all(len(c.model_extra["token_ids"]) == 6 and c.finish_reason == "length" for c in whole.choices)
    assert whole.usage is not None and whole.usage.completion_tokens == 24
    assert whole.usage.prompt_tokens == sum(len(encode_prompt(p)) for p in prompts)
    stream = client.completions.create(seed=11, stream=True, stream_options={"include_usage": True}, **params)
    chunks = list(stream)
    tokens: dict[int, list[int]] = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices
        tokens.setdefault(choice.index, []).extend(choice.model_extra.get("token_ids") or [])
    assert sorted(tokens) == [0, 1, 2, 3] and all(len(t) == 6 for t in tokens.values())
    finished = sorted(c.choices[0].index for c in chunks[:-1] if c.choices[0].finish_reason == "length")
    assert finished == [0, 1, 2, 3]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None and usage.completion_tokens == 24
    assert usage.prompt_tokens == whole.usage.prompt_tokens


def test_vllm_extras_reach_the_engine(vllm_server: LiveServer) -> None:
    """``truncate_prompt_tokens`` shortens what the engine runs (``usage.prompt_tokens``); ``priority``,
    ``cache_salt``, ``session_id``, ``vllm_xargs`` and ``kv_transfer_params`` go to vLLM, which accepts them (no KV
    connector: ``kv_transfer_params`` comes back null, as from vLLM); chat logprobs name tokens by id on request."""
    headers = {"Authorization": f"Bearer {vllm_server.api_key}"}
    body = {
        "model": "gpt-oss-120b",
        "prompt": PROMPT,
        "max_tokens": 3,
        "temperature": 0,
        "truncate_prompt_tokens": 4,
        "priority": 5,  # vLLM's default (fcfs) scheduling accepts any priority
        "cache_salt": "salt-a",
        "session_id": "s-1",
        "kv_transfer_params": {"note": "x"},
        "vllm_xargs": {"tag": "y"},
        "request_id": "extras-1",
    }
    r = requests.post(vllm_server.base_url + "/v1/completions", json=body, headers=headers, timeout=180)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["usage"]["prompt_tokens"] == 4 < len(encode_prompt(PROMPT))
    assert answer["id"] == "cmpl-extras-1" and answer["kv_transfer_params"] is None
    chat = {
        "model": "gpt-oss-120b",
        "messages": [{"role": "user", "content": "Say something."}],
        "max_tokens": 3,
        "logprobs": True,
        "return_tokens_as_token_ids": True,
        "cache_salt": "salt-b",
        "priority": -1,
    }
    r = requests.post(vllm_server.base_url + "/v1/chat/completions", json=chat, headers=headers, timeout=180)
    assert r.status_code == 200, r.text
    entries = r.json()["choices"][0]["logprobs"]["content"]
    assert entries and all(e["token"].startswith("token_id:") for e in entries)
