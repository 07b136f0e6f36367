"""The Messages API on the real vLLM engine (tiny random-weight checkpoint): only the grammar can make a random
model's output valid, so a schema-valid answer shows that ``output_config.format`` and a forced ``tool_choice`` reach
the engine; the messages validate as the ``anthropic`` SDK's types; a stream the client leaves aborts its engine
request."""

from __future__ import annotations

import json

import anthropic
import httpx
import jsonschema
import pytest
from anthropic.types import Message

from tests.helpers import LiveServer, generated_tokens, wait_engine_idle

pytestmark = pytest.mark.engine

GREEDY = {"temperature": 0}  # no sampled stop token can end a run early; Anthropic's body has no seed
# Every value bounded by the grammar (enums, booleans): greedy decoding of a random model fills any free string or
# number until the token budget runs out, so only a bounded schema is sure to end within it.
CITY = {
    "type": "object",
    "properties": {"city": {"enum": ["Paris", "Rome", "Oslo"]}, "capital": {"type": "boolean"}},
    "required": ["city", "capital"],
    "additionalProperties": False,
}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer", "maximum": 7}},
        "required": ["city", "days"],
        "additionalProperties": False,
    },
}
TIME = {
    "name": "get_time",
    "description": "Current time",
    "input_schema": {"type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}},
}


@pytest.fixture(scope="module")
def client(vllm_server: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=vllm_server.base_url, api_key=vllm_server.api_key, max_retries=0, timeout=180)


def test_an_output_format_gives_schema_valid_output(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(
        model="gpt-oss-120b",
        max_tokens=400,
        messages=[{"role": "user", "content": "Name a city and its population as JSON."}],
        output_config={"format": {"type": "json_schema", "schema": CITY}},
        extra_body=GREEDY,
    )
    message = Message.model_validate(json.loads(raw.text()))
    assert message.stop_reason == "end_turn", message
    (text,) = [b for b in message.content if b.type == "text"]
    jsonschema.validate(json.loads(text.text), CITY)


def test_a_forced_tool_streams_a_schema_valid_call(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="gpt-oss-120b",
        max_tokens=400,
        messages=[{"role": "user", "content": "Weather in Paris for 3 days?"}],
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
        extra_body=GREEDY,
    ) as stream:
        final = stream.get_final_message()
    Message.model_validate(final.model_dump(mode="json"))
    assert final.stop_reason == "tool_use"
    calls = [b for b in final.content if b.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].id.startswith("toolu_")
    jsonschema.validate(calls[0].input, WEATHER["input_schema"])


def test_disconnect_aborts_engine_request(vllm_server: LiveServer, client: anthropic.Anthropic) -> None:
    body = {
        "model": "gpt-oss-120b",
        "max_tokens": 1500,
        "stream": True,
        "messages": [{"role": "user", "content": "Write a long story."}],
        **GREEDY,
    }
    headers = {"x-api-key": vllm_server.api_key, "anthropic-version": "2023-06-01"}
    wait_engine_idle(vllm_server)
    before = generated_tokens(vllm_server)
    with (
        httpx.Client(timeout=60) as http,
        http.stream("POST", vllm_server.base_url + "/v1/messages", headers=headers, json=body) as r,
    ):
        seen = 0
        for line in r.iter_lines():
            seen += line.startswith("data: ")
            if seen >= 4:
                break  # leaving the loop finalises httpx's line iterator, which closes the stream
    wait_engine_idle(vllm_server)
    # the engine stopped early: far fewer than the 1500 tokens asked for (whatever the machine's speed)
    assert generated_tokens(vllm_server) - before < 1500
    # and the server keeps serving
    again = client.messages.create(
        model="gpt-oss-120b", max_tokens=4, messages=[{"role": "user", "content": "Hi"}], extra_body=GREEDY
    )
    assert again.usage.output_tokens >= 1
