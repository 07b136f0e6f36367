"""The Responses API on the real vLLM engine (tiny random-weight checkpoint): only the grammar can make a random
model's output valid, so a schema-valid answer shows that ``text.format`` and a named ``tool_choice`` reach the
engine; the objects and events validate against OpenAI's schemas, and a tool loop continues by
``previous_response_id``."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.helpers import LiveServer
from tests.responses_schema import check

pytestmark = pytest.mark.engine

CITY = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 16}, "population": {"type": "integer", "minimum": 0}},
    "required": ["city", "population"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer", "maximum": 7}},
        "required": ["city", "days"],
        "additionalProperties": False,
    },
    "strict": True,
}
TIME = {
    "type": "function",
    "name": "get_time",
    "description": "Current time",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}}},
}


@pytest.fixture(scope="module")
def client(vllm_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=vllm_server.base_url + "/v1", api_key=vllm_server.api_key, max_retries=0, timeout=180)


def test_a_json_schema_text_format_gives_schema_valid_output(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-oss-120b",
        input="Name a city and its population as JSON.",
        text={"format": {"type": "json_schema", "name": "city", "schema": CITY, "strict": True}},
        max_output_tokens=400,
        extra_body={"seed": 1},
    )
    body = response.model_dump(mode="json", by_alias=True, exclude_unset=True)
    check("Response", body)
    assert response.status == "completed", body
    jsonschema.validate(json.loads(response.output_text), CITY)


def test_a_named_tool_choice_streams_a_schema_valid_call_then_the_loop_continues(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="gpt-oss-120b",
        input="Weather in Paris for 3 days?",
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=400,
        extra_body={"seed": 3},
    ) as stream:
        for event in stream:
            check("ResponseStreamEvent", event.model_dump(mode="json", by_alias=True, exclude_unset=True))
        final = stream.get_final_response()
    assert final.status == "completed"
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    jsonschema.validate(json.loads(calls[0].arguments), WEATHER["parameters"])
    follow = client.responses.create(
        model="gpt-oss-120b",
        previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"sky":"clear"}'}],
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        max_output_tokens=8,
    )
    check("Response", follow.model_dump(mode="json", by_alias=True, exclude_unset=True))
    assert follow.status in ("completed", "incomplete") and follow.usage is not None
    # the continued prompt holds the first turn, its call and the tool's answer
    assert follow.usage.input_tokens > final.usage.input_tokens  # type: ignore[union-attr]
