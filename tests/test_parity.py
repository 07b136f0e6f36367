"""Generation parity over every provider route (scripted engine): the same five harmony transcripts (reasoning then
an answer, one tool call, parallel tool calls, a tool call after reasoning, the answer after a tool result) through
each route, its exact wire bytes pinned by golden files (``tests/golden/parity/<route>/``), streamed and not, and
the `openai` SDK reading the tool calls of every OpenAI-shaped route.

Every route's format has tool calls (Dataoorts sends whole calls in ``result.tool_calls`` and, streamed, in one
``{"response": "", "tool_calls": [...]}`` event); Oxen's and Dataoorts' documented formats carry no reasoning, so
there the reasoning is asserted absent.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from server.engine.base import EngineStep, GenerationRequest
from server.harmony.encoding import get_encoding
from tests.cases import all_cases
from tests.contract import Call, ProviderCase
from tests.helpers import LiveServer, assert_golden

CASES = all_cases()
GOLDEN = Path(__file__).parent / "golden" / "parity"
# the core's tool-call ids are random: numbered in order of appearance (a repeated id keeps its number)
CALL_ID = re.compile(r"call_[A-Za-z0-9]{24}")
# measured durations (llama-server's on dat1, Ollama's nanoseconds); token counts stay exact
MEASURED = re.compile(
    r'"((?:prompt|predicted)_(?:ms|per_token_ms|per_second)|(?:total|load|prompt_eval|eval)_duration)"'
    r":(?:[-0-9.e+]+|null)"
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]},
    },
}
TOOLS = {"tools": [WEATHER_TOOL, TIME_TOOL]}
TOOL_RESULT = '{"temp_c":18,"sky":"sunny"}'


@dataclass(frozen=True)
class Transcript:
    messages: list[dict[str, Any]]
    extra: dict[str, Any]
    reasoning: str
    content: str
    calls: list[tuple[str, str]] = field(default_factory=list)

    @property
    def finish(self) -> str:
        return "tool_calls" if self.calls else "stop"


TRANSCRIPTS = {
    "reasoning": Transcript(
        [{"role": "user", "content": "reason"}], {}, "User says hi. Reply politely.", "Hello! How can I help?"
    ),
    "tool_call": Transcript(
        [{"role": "user", "content": "two tools"}], TOOLS, "", "", [("get_weather", '{"city":"Paris"}')]
    ),
    "parallel_tool_calls": Transcript(
        [{"role": "user", "content": "parallel tools"}],
        TOOLS,
        "",
        "",
        [("get_weather", '{"city":"Paris"}'), ("get_time", '{"tz":"CET"}')],
    ),
    "reasoning_then_tool_call": Transcript(
        [{"role": "user", "content": "weather"}],
        TOOLS,
        "Need the weather tool.",
        "",
        [("get_weather", '{"city":"Paris"}')],
    ),
    "tool_result": Transcript(
        [
            {"role": "user", "content": "weather report"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_w1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_w1", "content": TOOL_RESULT},
        ],
        TOOLS,
        "The tool says 18C and sunny.",
        "It is 18°C and sunny in Paris.",
    ),
}
TOOL_TRANSCRIPTS = ["tool_call", "parallel_tool_calls", "reasoning_then_tool_call"]
SDK_CASES = [c for c in CASES if c.sdk_base is not None]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def case(request: pytest.FixtureRequest) -> ProviderCase:
    return request.param  # type: ignore[no-any-return]


def post(server: LiveServer, case: ProviderCase, transcript: Transcript, stream: bool) -> requests.Response:
    body = case.body(transcript.messages, stream, dict(transcript.extra))
    headers = case.auth_headers(server.api_key)
    r = requests.post(server.base_url + case.chat_path, json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r


def normalize(raw: str) -> str:
    numbers: dict[str, int] = {}
    text = CALL_ID.sub(lambda m: f"call_<{numbers.setdefault(m.group(0), len(numbers))}>", raw)
    return MEASURED.sub(r'"\1":<measured>', text)


def check_golden(path: Path, raw: bytes) -> None:
    assert_golden(path, normalize(raw.decode()))


def check_calls(calls: list[Call], transcript: Transcript) -> None:
    assert [(c.name, c.arguments) for c in calls] == transcript.calls
    ids = [c.id for c in calls]
    assert all(ids) and len(set(ids)) == len(ids)  # every call has its own id


@pytest.mark.parametrize("name", list(TRANSCRIPTS))
def test_golden_non_streaming(
    scripted_server: LiveServer, case: ProviderCase, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.pin is not None:
        case.pin(monkeypatch)
    transcript = TRANSCRIPTS[name]
    r = post(scripted_server, case, transcript, stream=False)
    check_golden(GOLDEN / case.name / f"{name}.json", r.content)
    data = r.json()
    assert case.text_of(data) == transcript.content
    assert case.reasoning_of(data) == (transcript.reasoning if case.carries_reasoning else "")
    check_calls(case.tool_calls_of(data), transcript)
    assert case.finish_of(data) in (transcript.finish, None)


@pytest.mark.parametrize("name", list(TRANSCRIPTS))
def test_golden_streaming(
    scripted_server: LiveServer, case: ProviderCase, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.pin is not None:
        case.pin(monkeypatch)
    transcript = TRANSCRIPTS[name]
    r = post(scripted_server, case, transcript, stream=True)
    assert r.headers["content-type"].startswith(case.stream_media_type)
    check_golden(GOLDEN / case.name / f"{name}.{case.stream_suffix}", r.content)
    payloads, blocks = case.split_stream(r.content.decode())
    assert case.ends_stream(blocks[-1])
    assert case.stream_text_of(payloads) == transcript.content
    assert case.stream_reasoning_of(payloads) == (transcript.reasoning if case.carries_reasoning else "")
    check_calls(case.stream_tool_calls_of(payloads), transcript)
    assert case.stream_finish_of(payloads) in (transcript.finish, None)
    if case.finish_of(post(scripted_server, case, transcript, stream=False).json()) is not None:
        assert case.stream_finish_of(payloads) == transcript.finish


def test_goldens_cover_every_route_and_transcript() -> None:
    """No golden file is left over from a route or transcript that no longer exists."""
    expected = {f"{c.name}/{t}.{ext}" for c in CASES for t in TRANSCRIPTS for ext in ("json", c.stream_suffix)}
    present = {str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file()}
    assert present == expected


@pytest.fixture
def prompts(scripted_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The prompts the scripted engine receives, decoded."""
    engine = scripted_server.app.state.ctx.engine
    seen: list[str] = []
    original = engine.script_for

    def recording(prompt: list[int]) -> list[int]:
        seen.append(get_encoding().decode(prompt))
        return original(prompt)  # type: ignore[no-any-return]

    monkeypatch.setattr(engine, "script_for", recording)
    yield seen


def test_tool_result_turn_reaches_the_prompt(
    scripted_server: LiveServer, case: ProviderCase, prompts: list[str]
) -> None:
    """The assistant's call and the tool's answer are rendered as harmony (call, then the tool's message)."""
    post(scripted_server, case, TRANSCRIPTS["tool_result"], stream=False)
    (prompt,) = prompts
    call = (
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city":"Paris"}<|call|>'
    )
    result = f"<|start|>functions.get_weather<|channel|>commentary to=assistant<|message|>{TOOL_RESULT}<|end|>"
    assert call + result in prompt
    assert prompt.endswith(result + "<|start|>assistant")


# ---- the openai SDK on the OpenAI-shaped routes -----------------------------------------------------


def sdk_client(server: LiveServer, case: ProviderCase) -> tuple[openai.OpenAI, str]:
    model = str(case.body([], False, {}).get("model", "gpt-oss-120b"))
    client = openai.OpenAI(base_url=server.base_url + (case.sdk_base or ""), api_key=server.api_key, max_retries=0)
    return client, model


@pytest.mark.parametrize("case", SDK_CASES, ids=[c.name for c in SDK_CASES])
@pytest.mark.parametrize("name", TOOL_TRANSCRIPTS)
def test_openai_sdk_parses_tool_calls(scripted_server: LiveServer, case: ProviderCase, name: str) -> None:
    transcript = TRANSCRIPTS[name]
    client, model = sdk_client(scripted_server, case)
    r = client.chat.completions.create(model=model, messages=transcript.messages, **transcript.extra)  # type: ignore[arg-type]
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == transcript.calls
    assert all(c.type == "function" and c.id for c in calls) and len({c.id for c in calls}) == len(calls)
    for c in calls:
        json.loads(c.function.arguments)


@pytest.mark.parametrize("case", SDK_CASES, ids=[c.name for c in SDK_CASES])
@pytest.mark.parametrize("name", TOOL_TRANSCRIPTS)
def test_openai_sdk_parses_streamed_tool_calls(scripted_server: LiveServer, case: ProviderCase, name: str) -> None:
    transcript = TRANSCRIPTS[name]
    client, model = sdk_client(scripted_server, case)
    stream = client.chat.completions.create(
        model=model,
        messages=transcript.messages,  # type: ignore[arg-type]
        stream=True,
        **transcript.extra,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for part in choice.delta.tool_calls or []:
            call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = part.id or call["id"]
            if part.function is not None:
                call["name"] = part.function.name or call["name"]
                call["arguments"] += part.function.arguments or ""
    assert finish == "tool_calls"
    assert [(calls[i]["name"], calls[i]["arguments"]) for i in sorted(calls)] == transcript.calls
    ids = [calls[i]["id"] for i in sorted(calls)]
    assert all(ids) and len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", SDK_CASES, ids=[c.name for c in SDK_CASES])
def test_openai_sdk_tool_result_turn(scripted_server: LiveServer, case: ProviderCase) -> None:
    transcript = TRANSCRIPTS["tool_result"]
    client, model = sdk_client(scripted_server, case)
    r = client.chat.completions.create(model=model, messages=transcript.messages, **transcript.extra)  # type: ignore[arg-type]
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.content == transcript.content
    assert not r.choices[0].message.tool_calls


# ---- each route passes its provider's documented features into the core ------------------------------


@pytest.fixture
def generations(scripted_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[GenerationRequest]]:
    """The engine requests the scripted engine receives (sampling, cap, constraint, prompt)."""
    engine = scripted_server.app.state.ctx.engine
    seen: list[GenerationRequest] = []
    original = engine.generate

    def recording(request: GenerationRequest) -> AsyncIterator[EngineStep]:
        seen.append(request)
        return original(request)  # type: ignore[no-any-return]

    monkeypatch.setattr(engine, "generate", recording)
    yield seen


def run(server: LiveServer, case: ProviderCase, text: str, extra: dict[str, Any]) -> requests.Response:
    body = case.body([{"role": "user", "content": text}], False, extra)
    return requests.post(
        server.base_url + case.chat_path, json=body, headers=case.auth_headers(server.api_key), timeout=30
    )


def test_reasoning_effort_reaches_the_prompt(
    scripted_server: LiveServer, case: ProviderCase, generations: list[GenerationRequest]
) -> None:
    assert run(scripted_server, case, "reason", case.effort_fields).status_code == 200
    assert run(scripted_server, case, "reason", {}).status_code == 200
    high, default = (get_encoding().decode(g.prompt_token_ids) for g in generations)
    assert "Reasoning: high" in high and "Reasoning: medium" in default


def test_sampling_reaches_the_core(
    scripted_server: LiveServer, case: ProviderCase, generations: list[GenerationRequest]
) -> None:
    if not case.expected_sampling:
        pytest.skip(f"{case.name} lists no sampling fields")
    r = run(scripted_server, case, "reason", case.sampling_fields)
    assert r.status_code == 200, r.text
    (generation,) = generations
    for key, value in case.expected_sampling.items():
        actual = generation.max_tokens if key == "max_tokens" else getattr(generation.sampling, key)
        assert actual == (pytest.approx(value) if isinstance(value, float) else value), key


def test_response_format_and_tool_choice_reach_the_core(
    scripted_server: LiveServer, case: ProviderCase, generations: list[GenerationRequest]
) -> None:
    schema = {"type": "object", "properties": {"answer_field": {"type": "string"}}, "required": ["answer_field"]}
    expected: list[tuple[str, str | None]] = [("none", None)]
    assert run(scripted_server, case, "reason", dict(TOOLS)).status_code == 200  # tools, auto: free output
    if case.json_schema_fields is not None:
        assert run(scripted_server, case, "reason", case.json_schema_fields(schema)).status_code == 200
        expected.append(("json", "answer_field"))
    if case.named_tool_fields is not None:
        assert run(scripted_server, case, "reason", {**TOOLS, **case.named_tool_fields("get_time")}).status_code == 200
        expected.append(("tool", "functions.get_time "))
    if case.required_tool_fields is not None:
        assert run(scripted_server, case, "reason", {**TOOLS, **case.required_tool_fields}).status_code == 200
        expected.append(("tool", "functions.get_weather "))
    assert len(generations) == len(expected)
    assert generations[0].constraint is None
    for generation, (kind, needle) in zip(generations[1:], expected[1:], strict=True):
        assert generation.constraint is not None
        tag = str(generation.constraint["structural_tag"])
        assert needle is not None and needle in tag
        if kind == "tool" and case.named_tool_fields is not None and needle == "functions.get_time ":
            assert "functions.get_weather" not in tag  # the named tool only


def test_out_of_range_fields_are_refused(scripted_server: LiveServer, case: ProviderCase) -> None:
    if not case.range_errors:
        pytest.skip(f"{case.name} lists no range errors")
    for fields in case.range_errors:
        r = run(scripted_server, case, "reason", fields)
        assert r.status_code == 400, (fields, r.text)
        case.check_error(r, 400)
