"""Generation parity on the real vLLM engine (tiny random-weight checkpoint), one pass over every provider route:
structured output (json_schema), a forced tool call, logprobs and seed determinism, each where the provider
documents it, in that provider's spelling. The weights are random, so only the grammar makes output valid.

``openai-prefixed`` is the same route as ``openai`` under another prefix: it is left out to keep the number of
engine requests down.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
import requests

from server.harmony.encoding import get_encoding
from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import LiveServer

pytestmark = pytest.mark.engine

CASES = [c for c in all_cases() if c.name != "openai-prefixed"]
IDS = [c.name for c in CASES]

# bounded, so that a random model reaches the end of the JSON within the token budget
ANSWER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 12},
        "population": {"type": "integer", "minimum": 0, "maximum": 1000},
    },
    "required": ["city", "population"],
    "additionalProperties": False,
}
WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "maxLength": 10}, "days": {"type": "integer", "maximum": 7}},
    "required": ["city", "days"],
    "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMS}},
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Time",
            "parameters": {
                "type": "object",
                "properties": {"tz": {"type": "string", "enum": ["UTC", "CET"]}},
                "required": ["tz"],
                "additionalProperties": False,
            },
        },
    },
]
BUDGET = 300  # reasoning is capped at 16 tokens by the test server; the JSON needs a few dozen more


def repeatable(case: ProviderCase, seed: int) -> dict[str, Any]:
    """Fields that make the answer the same on every run: a seed, or greedy decoding where the body has no seed."""
    return {"seed": seed} if case.seeded else {"temperature": 0}


def post(server: LiveServer, case: ProviderCase, text: str, extra: dict[str, Any]) -> dict[str, Any]:
    body = case.body([{"role": "user", "content": text}], False, extra)
    r = requests.post(
        server.base_url + case.chat_path, json=body, headers=case.auth_headers(server.api_key), timeout=300
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_json_schema_answer_validates(vllm_server: LiveServer, case: ProviderCase) -> None:
    if case.json_schema_fields is None:
        pytest.skip(f"{case.name} documents no json_schema response_format")
    extra = {**case.json_schema_fields(ANSWER), **case.length_fields(BUDGET), **repeatable(case, 7)}
    data = post(vllm_server, case, "Name a city and its population as JSON.", extra)
    assert case.finish_of(data) in ("stop", None)
    jsonschema.validate(json.loads(case.text_of(data)), ANSWER)
    assert case.tool_calls_of(data) == []


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forced_tool_call_validates(vllm_server: LiveServer, case: ProviderCase) -> None:
    """A named tool_choice where documented; else ``required`` (dat1: llama-server takes tool_choice as a string)."""
    if case.named_tool_fields is not None:
        choice, names = case.named_tool_fields("get_weather"), ["get_weather"]
    elif case.required_tool_fields is not None:
        choice, names = case.required_tool_fields, ["get_weather", "get_time"]
    else:
        pytest.skip(f"{case.name} documents no tool_choice")
    extra = {"tools": TOOLS, **choice, **case.length_fields(BUDGET), **repeatable(case, 3)}
    data = post(vllm_server, case, "Weather in Paris for 3 days?", extra)
    assert case.finish_of(data) == "tool_calls"
    (call,) = case.tool_calls_of(data)
    assert call.name in names and call.id
    params = next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == call.name)
    jsonschema.validate(json.loads(call.arguments), params)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_logprobs_are_real_and_match_tokens(vllm_server: LiveServer, case: ProviderCase) -> None:
    if case.logprobs_fields is None or case.logprobs_of is None:
        pytest.skip(f"{case.name}'s format has no logprobs")
    extra = {**case.logprobs_fields(3), **case.length_fields(8), "seed": 2, "ignore_eos": True}
    data = post(vllm_server, case, "Hello", extra)
    entries = case.logprobs_of(data)
    assert len(entries) == data["usage"]["completion_tokens"] == 8
    enc = get_encoding()
    for entry in entries:
        assert entry.token_id is not None and entry.token == enc.decode([entry.token_id])
        assert math.isfinite(entry.logprob) and entry.logprob <= 0.0
        assert len(entry.top) == 3 and entry.top == sorted(entry.top, reverse=True)
        assert entry.logprob <= entry.top[0] + 1e-6  # the sampled token is never likelier than the likeliest
    # a random-weight model spreads probability over ~200k tokens: logprobs near -ln(201088)
    assert all(-20.0 < e.logprob < -5.0 for e in entries)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_seed_determinism(vllm_server: LiveServer, case: ProviderCase) -> None:
    if not case.seeded:
        pytest.skip(f"{case.name}'s body has no seed")

    def run(seed: int) -> tuple[str, str]:
        extra: dict[str, Any] = {**case.length_fields(12), "seed": seed, "temperature": 1.0}
        if case.ignore_eos:
            extra["ignore_eos"] = True
        data = post(vllm_server, case, "Same input", extra)
        if case.ignore_eos:
            assert data_tokens(data) == 12
        return case.text_of(data), case.reasoning_of(data)

    first = run(11)
    assert any(first)
    assert run(11) == first
    assert run(12) != first


def data_tokens(data: dict[str, Any]) -> int:
    usage = data.get("usage") or data.get("result", {}).get("usage") or {}
    return int(usage["completion_tokens"])
