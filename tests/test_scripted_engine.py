"""The scripted engine behaves as vLLM does where a client can see it (through the OpenAI route and its SDK):
ranked top logprobs, min_tokens holding back stop tokens, and stop tokens checked before max_tokens."""

from __future__ import annotations

import json
import math
from typing import Any

import openai
import pytest
import requests

from server.engine.scripted import top_logprobs, with_min_tokens
from server.harmony.encoding import CALL, RETURN
from tests.helpers import LiveServer

REASON = [{"role": "user", "content": "reason"}]
ANSWER = "Hello! How can I help?"
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


@pytest.fixture
def client(scripted_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted_server.base_url + "/v1", api_key=scripted_server.api_key, max_retries=0)


def raw(server: LiveServer, **fields: Any) -> dict[str, Any]:
    body = {"model": "gpt-oss-120b", "messages": REASON, **fields}
    headers = {"Authorization": f"Bearer {server.api_key}"}
    r = requests.post(server.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def script_length(client: openai.OpenAI) -> int:
    r = client.chat.completions.create(model="gpt-oss-120b", messages=REASON)  # type: ignore[arg-type]
    assert r.usage is not None
    return r.usage.completion_tokens


def test_top_logprobs_are_ranked_alternatives(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="gpt-oss-120b", messages=REASON, logprobs=True, top_logprobs=5)  # type: ignore[arg-type]
    entries = (r.choices[0].logprobs and r.choices[0].logprobs.content) or []
    assert entries and r.usage is not None and len(entries) == r.usage.completion_tokens
    for entry in entries:
        top = entry.top_logprobs
        assert len(top) == 5 and top[0].token == entry.token and top[0].logprob == entry.logprob == 0.0
        values = [t.logprob for t in top]
        assert values == sorted(values, reverse=True) and len(set(values)) == 5 and all(map(math.isfinite, values))
    ids = [t for t, _ in top_logprobs(1234, 20)]
    assert ids[0] == 1234 and len(set(ids)) == 20  # distinct token ids
    none = client.chat.completions.create(model="gpt-oss-120b", messages=REASON, logprobs=True)  # type: ignore[arg-type]
    assert all(e.top_logprobs == [] for e in (none.choices[0].logprobs and none.choices[0].logprobs.content) or [])


def test_min_tokens_holds_back_the_stop_token(client: openai.OpenAI) -> None:
    n = script_length(client)  # the script's tokens, its <|return|> included
    r = client.chat.completions.create(model="gpt-oss-120b", messages=REASON, extra_body={"min_tokens": n + 4})  # type: ignore[arg-type]
    assert r.usage is not None and r.usage.completion_tokens == n + 5  # n + 4 tokens, then the stop token
    # the <|return|> that was due is written as filler (a space) until min_tokens tokens are out
    assert r.choices[0].message.content == ANSWER + " " * 5 and r.choices[0].finish_reason == "stop"
    shorter = client.chat.completions.create(model="gpt-oss-120b", messages=REASON, extra_body={"min_tokens": n - 1})  # type: ignore[arg-type]
    assert (
        shorter.choices[0].message.content == ANSWER
        and shorter.usage
        == client.chat.completions.create(
            model="gpt-oss-120b",
            messages=REASON,  # type: ignore[arg-type]
        ).usage
    )


def test_min_tokens_keeps_a_tool_call_parseable(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="gpt-oss-120b",
        messages=[{"role": "user", "content": "weather"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        extra_body={"min_tokens": 60},
    )
    (call,) = r.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"city": "Paris"} and r.choices[0].finish_reason == "tool_calls"
    assert r.usage is not None and r.usage.completion_tokens == 61


def test_stop_token_wins_over_max_tokens(client: openai.OpenAI, scripted_server: LiveServer) -> None:
    """vLLM checks the stop tokens before max_tokens: a stop token that is the last allowed token is a stop."""
    n = script_length(client)
    assert raw(scripted_server, max_tokens=n)["choices"][0]["finish_reason"] == "stop"
    cut = raw(scripted_server, max_tokens=n - 1)
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == n - 1


def test_ignore_eos_makes_return_a_stop_reason(scripted_server: LiveServer) -> None:
    """With ignore_eos vLLM has no EOS token: <|return|> ends the answer as one of the stop tokens, named."""
    assert raw(scripted_server)["choices"][0]["stop_reason"] is None
    assert raw(scripted_server, ignore_eos=True)["choices"][0]["stop_reason"] == RETURN


def test_with_min_tokens() -> None:
    stops = {RETURN, CALL}
    assert with_min_tokens([1, 2, RETURN, 9], stops, 0, 7) == [1, 2, RETURN]
    assert with_min_tokens([1, 2, RETURN], stops, 2, 7) == [1, 2, RETURN]
    assert with_min_tokens([1, 2, CALL], stops, 4, 7) == [1, 2, 7, 7, CALL]
    assert with_min_tokens([1, 2], stops, 4, 7) == [1, 2, 7, 7]  # a script without a stop token: filled, then ends
