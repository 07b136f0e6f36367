"""The Ollama API on the real vLLM engine (tiny random-weight checkpoint), through Ollama's own client. Only the
grammar can make a random model's output valid, so a schema-valid answer shows that ``format`` reaches the engine.

Ollama's API has no ``tool_choice``: a call cannot be forced. With ``tools`` and a ``format`` schema together the
grammar allows either a call of an offered tool (its arguments valid for its parameters) or an answer matching the
schema, so whichever the model takes must parse and validate. A streamed request the client abandons leaves the
engine with no running request."""

from __future__ import annotations

import json

import httpx
import jsonschema
import ollama
import pytest

from tests.helpers import LiveServer, generated_tokens, wait_engine_idle

pytestmark = pytest.mark.engine

MODEL = "gpt-oss:120b"
# Every value bounded by the grammar (enums, booleans): greedy decoding of a random model fills any free string or
# number until the token budget runs out, so only a bounded schema is sure to end within it.
CITY = {
    "type": "object",
    "properties": {"city": {"enum": ["Paris", "Rome", "Oslo"]}, "capital": {"type": "boolean"}},
    "required": ["city", "capital"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Rome"]}, "days": {"enum": [1, 2, 3]}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture(scope="module")
def client(vllm_server: LiveServer) -> ollama.Client:
    auth = {"Authorization": f"Bearer {vllm_server.api_key}"}
    return ollama.Client(host=vllm_server.base_url, headers=auth, timeout=180)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_format_schema_answer_validates(client: ollama.Client, seed: int) -> None:
    r = client.chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a city and its population as JSON."}],
        format=CITY,
        options={"num_predict": 400, "seed": seed, "temperature": 0},
    )
    assert r.done and r.done_reason == "stop" and not r.message.tool_calls
    jsonschema.validate(json.loads(r.message.content or ""), CITY)
    assert r.eval_count and r.eval_duration and r.total_duration and r.total_duration >= r.eval_duration


def test_generate_format_schema_streamed(client: ollama.Client) -> None:
    parts = list(
        client.generate(
            model=MODEL,
            prompt="Reply with a JSON object.",
            format=CITY,
            stream=True,
            options={"num_predict": 400, "seed": 5, "temperature": 0},
        )
    )
    assert parts[-1].done and parts[-1].done_reason == "stop" and parts[-1].context
    jsonschema.validate(json.loads("".join(p.response or "" for p in parts)), CITY)


def test_tools_with_a_format_stream_a_call_or_an_answer_that_parses(client: ollama.Client) -> None:
    parts = list(
        client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "Weather in Paris for 3 days?"}],
            tools=[WEATHER],
            format=CITY,
            stream=True,
            options={"num_predict": 400, "seed": 3, "temperature": 0},
        )
    )
    last = parts[-1]
    assert last.done and last.done_reason == "stop"
    calls = last.message.tool_calls or []
    if calls:  # whole, in the last object (as Ollama streams gpt-oss's calls)
        (call,) = calls
        assert call.function.name == "get_weather"
        jsonschema.validate(dict(call.function.arguments), WEATHER["function"]["parameters"])  # type: ignore[index]
    else:
        jsonschema.validate(json.loads("".join(p.message.content or "" for p in parts)), CITY)


def test_disconnect_aborts_engine_request(vllm_server: LiveServer, client: ollama.Client) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long story."}],
        "options": {"num_predict": 1500, "temperature": 0},  # greedy: no sampled stop token ends it early
    }
    headers = {"Authorization": f"Bearer {vllm_server.api_key}"}
    url = vllm_server.base_url + "/api/chat"
    wait_engine_idle(vllm_server)
    before = generated_tokens(vllm_server)
    with httpx.Client(timeout=60) as http, http.stream("POST", url, json=body, headers=headers) as r:
        for seen, _ in enumerate(r.iter_lines(), 1):
            if seen >= 3:
                break  # leaving the loop finalises httpx's line iterator, which closes the stream
    wait_engine_idle(vllm_server)
    # the engine stopped early: far fewer than the 1500 tokens asked for (whatever the machine's speed)
    assert generated_tokens(vllm_server) - before < 1500
    # and the server keeps serving
    again = client.chat(model=MODEL, messages=[{"role": "user", "content": "Hi"}], options={"num_predict": 4})
    assert again.done and again.eval_count and again.eval_count >= 1
