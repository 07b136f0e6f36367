"""``/v1/completions`` and ``prompt_logprobs`` on the real vLLM engine (tiny random-weight checkpoint): a raw prompt
runs as given, greedy decoding streams the same text it answers whole, and the prompt's logprobs come back from vLLM
as it reports them (the first token None, then the prompt token first with its rank, then the top alternatives)."""

from __future__ import annotations

import math

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
