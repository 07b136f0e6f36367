"""Generation features end to end on the real vLLM engine (tiny random-weight checkpoint): structured output,
forced tool calls, logprobs. The weights are random, so only the grammar makes the output valid: these tests
show that the constraint reaches the engine and that harmony stays intact around it."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import openai
import pytest

from server.harmony.encoding import get_encoding
from tests.helpers import LiveServer

pytestmark = pytest.mark.engine

CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 16},
        "population": {"type": "integer", "minimum": 0, "maximum": 100000000},
    },
    "required": ["city", "population"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer", "maximum": 7}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time",
        "parameters": {
            "type": "object",
            "properties": {"tz": {"type": "string", "enum": ["UTC", "CET", "PST"]}},
            "required": ["tz"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def client(vllm_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=vllm_server.base_url + "/v1", api_key=vllm_server.api_key, max_retries=0, timeout=180)


@pytest.mark.parametrize("seed", [1, 2])
def test_json_schema_answer_validates(client: openai.OpenAI, seed: int) -> None:
    r = client.chat.completions.create(
        model="gpt-oss-120b",
        messages=[{"role": "user", "content": "Name a city and its population as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}},
        max_tokens=400,
        seed=seed,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content or ""), CITY)


def test_json_object_streamed(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-oss-120b",
        messages=[{"role": "user", "content": "Reply with a JSON object."}],
        response_format={"type": "json_object"},
        max_tokens=400,
        seed=5,
        stream=True,
    )
    content = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    # a random model may write any object; the grammar guarantees it is one (and the stream ended cleanly)
    assert isinstance(json.loads(content), dict)


def test_named_tool_choice(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="gpt-oss-120b",
        messages=[{"role": "user", "content": "Weather in Paris for 3 days?"}],
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=400,
        seed=3,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), WEATHER["function"]["parameters"])


def test_required_tool_choice_streamed(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-oss-120b",
        messages=[{"role": "user", "content": "What time is it in Berlin?"}],
        tools=[WEATHER, TIME],
        tool_choice="required",
        max_tokens=400,
        seed=11,
        stream=True,
    )
    names, args, finish = [], "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        for tc in chunk.choices[0].delta.tool_calls or []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            args += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and len(names) == 1
    tool = {"get_weather": WEATHER, "get_time": TIME}[names[0]]
    jsonschema.validate(json.loads(args), tool["function"]["parameters"])


def test_invalid_schema_is_400_and_server_stays_up(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-oss-120b",
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}},
        )
    with pytest.raises(openai.BadRequestError):
        huge = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(5000)}}
        client.chat.completions.create(
            model="gpt-oss-120b",
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": huge}},
        )
    r = client.chat.completions.create(model="gpt-oss-120b", messages=[{"role": "user", "content": "x"}], max_tokens=2)
    assert r.usage is not None and r.usage.completion_tokens == 2


def test_logprobs_are_real_and_match_tokens(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="gpt-oss-120b",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=12,
        seed=2,
        logprobs=True,
        top_logprobs=3,
        extra_body={"return_token_ids": True, "ignore_eos": True},
    )
    choice = r.choices[0]
    token_ids = choice.model_extra["token_ids"]
    entries = choice.logprobs.content if choice.logprobs else []
    assert len(entries) == len(token_ids) == 12
    enc = get_encoding()
    for token_id, entry in zip(token_ids, entries, strict=True):
        assert entry.token == enc.decode([token_id])
        assert math.isfinite(entry.logprob) and entry.logprob <= 0.0
        assert len(entry.top_logprobs) == 3
        tops = [t.logprob for t in entry.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        # the sampled token is never more likely than the most likely one
        assert entry.logprob <= tops[0] + 1e-6
    # a random-weight model spreads probability over ~200k tokens: logprobs near -ln(201088)
    assert all(-20.0 < e.logprob < -5.0 for e in entries)


def test_seed_determinism_under_concurrency(client: openai.OpenAI) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def run(_: int) -> list[int]:
        r = client.chat.completions.create(
            model="gpt-oss-120b",
            messages=[{"role": "user", "content": "Same input"}],
            max_tokens=16,
            seed=77,
            temperature=1.0,
            extra_body={"return_token_ids": True, "ignore_eos": True},
        )
        return list(r.choices[0].model_extra["token_ids"])

    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(run, range(4)))
    assert all(o == outputs[0] for o in outputs)


def test_n_choices_stream_and_not(client: openai.OpenAI) -> None:
    """n=3 runs three engine requests on one prompt: three choices, usage summing them; with a seed, choice i samples
    as a lone request with seed + i does (vLLM's parallel sampling)."""
    params: dict[str, Any] = {
        "model": "gpt-oss-120b",
        "messages": [{"role": "user", "content": "Three ways"}],
        "max_tokens": 8,
        "temperature": 1.0,
        "extra_body": {"return_token_ids": True, "ignore_eos": True},
    }
    r = client.chat.completions.create(n=3, seed=5, **params)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(len(c.model_extra["token_ids"]) == 8 and c.finish_reason == "length" for c in r.choices)
    assert r.usage is not None and r.usage.completion_tokens == 24
    alone = client.chat.completions.create(seed=6, **params)
    assert alone.usage is not None and r.usage.prompt_tokens == alone.usage.prompt_tokens
    assert r.choices[1].model_extra["token_ids"] == alone.choices[0].model_extra["token_ids"]
    chunks = list(client.chat.completions.create(n=3, stream=True, stream_options={"include_usage": True}, **params))
    finished = sorted(c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason == "length")
    assert finished == [0, 1, 2]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 24
