"""dat1's pure parts: llama-server's reading of a body (types, defaults, clamping), and the response, stream and
error builders, byte for byte (the documented example included) with fixed ids, clock and durations."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from routes.dat1 import errors, ids, request, response, stream
from routes.dat1.settings import Dat1Settings
from server.errors import ContextLengthError, InvalidRequestError, RateLimitError
from server.harmony.encoding import get_encoding
from server.http.jsonio import dumps
from server.types import ChatResult, Delta, Event, Finish, Timings, ToolCall, ToolCallDelta, Usage
from tests.helpers import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "dat1"
COMPLETION_ID = "chatcmpl-a6oVnja9gLmx3o948hU46mWUD7sWjsPF"
# dat1's documented response (wire spec 1.4), as llama-server writes it (compact)
DOC_RESPONSE = {
    "choices": [
        {
            "finish_reason": "stop",
            "index": 0,
            "message": {"role": "assistant", "content": "The capital of France is Paris."},
        }
    ],
    "created": 1754303118,
    "model": "gpt-3.5-turbo",
    "system_fingerprint": "b5466-9ecf3e66",
    "object": "chat.completion",
    "usage": {"completion_tokens": 8, "prompt_tokens": 33, "total_tokens": 41},
    "id": COMPLETION_ID,
    "timings": {
        "prompt_n": 1,
        "prompt_ms": 10.662,
        "prompt_per_token_ms": 10.662,
        "prompt_per_second": 93.79103357719,
        "predicted_n": 8,
        "predicted_ms": 60.236,
        "predicted_per_token_ms": 7.5295,
        "predicted_per_second": 132.81094362175443,
    },
}
# 10.662 ms to the first token, then 60.236 ms for the rest (the documented durations)
DOC_TIMINGS = Timings(start=1000.0, first_token=1000.010662, end=1000.070898)
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    tool_call_ids = iter(f"{i:032d}" for i in range(100))
    monkeypatch.setattr(ids, "now", lambda: 1754303118)
    monkeypatch.setattr(ids, "new_tool_call_id", lambda: next(tool_call_ids))


def parse(body: dict[str, Any], **settings: Any) -> request.Dat1Request:
    return request.parse_request(body, Dat1Settings(**settings), request_id="r")


def check_golden(name: str, data: bytes) -> None:
    assert_golden(GOLDEN / name, data)


# ---- response builder -----------------------------------------------------------------------------------


def test_documented_example_bytes() -> None:
    result = ChatResult(
        content="The capital of France is Paris.",
        reasoning=None,
        tool_calls=[],
        finish_reason="stop",
        usage=Usage(prompt_tokens=33, completion_tokens=8),
        timings=DOC_TIMINGS,
    )
    # the docs' prompt_n is 1 of 33 prompt tokens: 32 came from llama-server's prompt cache
    body = response.completion_body(
        [result], completion_id=COMPLETION_ID, model="gpt-3.5-turbo", settings=Dat1Settings(), cache_n=32
    )
    assert dumps(body) == json.dumps(DOC_RESPONSE, separators=(",", ":"), ensure_ascii=False).encode()


def test_message_rules() -> None:
    def message(content: str | None, reasoning: str | None, calls: int, raw: bool = False) -> dict[str, Any]:
        tool_calls = [ToolCall("call_x", "f", '{"a":1}') for _ in range(calls)]
        result = ChatResult(content, reasoning, tool_calls, "tool_calls", Usage(1, 1), DOC_TIMINGS)
        return response.message_body(result, raw_reasoning=raw)

    assert message("", None, 0) == {"role": "assistant", "content": ""}
    assert message(None, " \n thought\t", 0) == {"role": "assistant", "reasoning_content": "thought", "content": ""}
    assert message(None, "  ", 1) == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": '{"a":1}'}, "id": "0" * 32}],
    }
    assert message("text", None, 1)["content"] == "text"
    assert message("A", " r ", 0, raw=True) == {
        "role": "assistant",
        "content": "<|channel|>analysis<|message|> r <|end|>A",
    }


def test_finish_reasons() -> None:
    assert [response.finish_reason(r) for r in ("stop", "tool_calls", "length", "abort")] == [
        "stop",
        "tool_calls",
        "length",
        "length",
    ]


def test_timings_math() -> None:
    t = response.timings_body(33, 10.662, 8, 60.236, era="A")
    assert t["prompt_per_token_ms"] == 10.662 / 33 and t["prompt_per_second"] == 1e3 / 10.662 * 33
    # whole microseconds, and C++ division: 0/0 and x/0 serialise as null, as nlohmann writes NaN and inf
    zero = response.timings_body(5, 0.0004, 0, 0.0, era="B")
    assert zero["prompt_ms"] == 0.0 and next(iter(zero)) == "cache_n"
    assert math.isinf(zero["prompt_per_second"]) and math.isnan(zero["predicted_per_token_ms"])
    assert json.loads(dumps(zero))["predicted_per_second"] is None
    assert response.usage_body(3, 4, era="C") == {
        "completion_tokens": 4,
        "prompt_tokens": 3,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


# ---- stream encoder -------------------------------------------------------------------------------------


def events(*items: Event) -> AsyncIterator[tuple[int, Event]]:
    async def gen() -> AsyncIterator[tuple[int, Event]]:
        for item in items:
            yield 0, item

    return gen()


def stream_bytes(items: list[Event], settings: Dat1Settings, **options: Any) -> bytes:
    opts = stream.StreamOptions(completion_id=COMPLETION_ID, model="gpt-3.5-turbo", prompt_tokens=33, **options)

    async def run() -> bytes:
        return b"".join([part async for part in stream.encode_stream(events(*items), settings=settings, opts=opts)])

    return asyncio.run(run())


STREAM = [
    Delta(reasoning=" The user", token_ids=[1, 2, 3, 4]),
    Delta(reasoning=" greets. ", token_ids=[5]),
    Delta(reasoning=" \n", token_ids=[6]),
    Delta(content="Hello", token_ids=[7, 8, 9, 10]),
    Delta(content=" there", token_ids=[11]),
    Delta(token_ids=[12]),
    Finish("stop", Usage(33, 12), DOC_TIMINGS),
]
TOOL_STREAM = [
    Delta(tool_calls=[ToolCallDelta(0, "call_a", "get_weather", "")], token_ids=[1, 2, 3]),
    Delta(tool_calls=[ToolCallDelta(0, None, None, "")], token_ids=[4]),
    Delta(tool_calls=[ToolCallDelta(0, None, None, '{"city":')], token_ids=[5]),
    Delta(tool_calls=[ToolCallDelta(0, None, None, '"Paris"}')], token_ids=[6, 7]),
    Finish("tool_calls", Usage(40, 7), DOC_TIMINGS),
]


@pytest.mark.parametrize(
    ("name", "items", "settings", "options"),
    [
        ("stream-era-a.sse", STREAM, {}, {}),
        ("stream-era-b.sse", STREAM, {"stream_era": "B"}, {}),
        ("stream-era-c.sse", STREAM, {"stream_era": "C"}, {}),
        ("stream-era-c-usage.sse", STREAM, {"stream_era": "C"}, {"include_usage": True}),
        ("stream-raw-reasoning.sse", STREAM, {}, {"raw_reasoning": True}),
        ("stream-event-lines.sse", STREAM, {"sse_event_lines": True}, {"timings": False}),
        ("stream-tool-call.sse", TOOL_STREAM, {}, {}),
        ("stream-error-a.sse", [*STREAM[:2], Finish("error", Usage(33, 5), DOC_TIMINGS, error="boom")], {}, {}),
        (
            "stream-error-c.sse",
            [*STREAM[:2], Finish("error", Usage(33, 5), DOC_TIMINGS, error="boom")],
            {"stream_era": "C"},
            {},
        ),
    ],
)
def test_stream_goldens(name: str, items: list[Event], settings: dict[str, Any], options: dict[str, Any]) -> None:
    check_golden(name, stream_bytes(items, Dat1Settings(**settings), **options))


def test_stream_reasoning_is_stripped_like_the_parser() -> None:
    payloads = [json.loads(line[6:]) for line in stream_bytes(STREAM, Dat1Settings()).decode().split("\n\n")[:-2]]
    deltas = [p["choices"][0]["delta"] for p in payloads]
    assert deltas[0] == {"role": "assistant", "content": None}
    # leading whitespace dropped, trailing whitespace held back until more text follows, then dropped at the end
    assert [d.get("reasoning_content") for d in deltas[1:3]] == ["The user", " greets."]
    assert [d.get("content") for d in deltas[3:5]] == ["Hello", " there"]


# ---- request: llama-server's reading ------------------------------------------------------------------------


def test_defaults_are_llama_servers() -> None:
    parsed = parse({"messages": MESSAGES})
    s = parsed.chat.sampling
    assert (s.temperature, s.top_k, s.top_p, s.min_p) == (0.8, 40, 0.95, 0.05)
    assert s.max_tokens is None and s.seed is None and not s.logprobs
    assert not parsed.stream and parsed.model == "gpt-3.5-turbo" and parsed.chat.reasoning_effort is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (True, 1), (2.9, 2), (-2.9, -2), (2**32 + 5, 5), (2**31, -(2**31)), (1e30, -(2**31)), ("7", 9), ([], 9)],
)
def test_json_int_converts_like_cpp(value: Any, expected: int) -> None:
    assert request.json_int({"k": value}, "k", 9) == expected


def test_json_value_fallbacks() -> None:
    assert request.json_float({"k": True}, "k", 0.5) == 1.0 and request.json_float({"k": "x"}, "k", 0.5) == 0.5
    assert request.json_bool({"k": 1}, "k", False) is False and request.json_bool({"k": None}, "k", True) is True
    assert request.json_str({"k": 5}, "k", "d") == "d" and request.json_str("not an object", "k", "d") == "d"


def test_values_are_clamped_into_the_engines_ranges() -> None:
    s = parse(
        {
            "messages": MESSAGES,
            "temperature": 1e308,
            "top_p": 0,
            "top_k": 10**9,
            "min_p": -1,
            "presence_penalty": 1e9,
            "frequency_penalty": -1e9,
            "repeat_penalty": 0,
            "n_probs": 10**6,
            "seed": -1,
        }
    ).chat.sampling
    assert s.temperature == 2.0 and 0 < s.top_p <= 1e-6 and s.top_k == request.N_VOCAB and s.min_p == 0.0
    assert (s.presence_penalty, s.frequency_penalty, s.repetition_penalty) == (2.0, -2.0, None)
    assert s.logprobs and s.top_logprobs == request.MAX_LOGPROBS and s.seed is None
    s = parse({"messages": MESSAGES, "temperature": -1, "top_p": 5, "top_k": 0, "seed": 2**32 + 7}).chat.sampling
    assert (s.temperature, s.top_p, s.top_k, s.seed) == (0.0, 1.0, -1, 7)
    assert parse({"messages": MESSAGES, "repeat_penalty": 1.3}).chat.sampling.repetition_penalty == 1.3


def test_probabilities() -> None:
    assert parse({"messages": MESSAGES, "logprobs": True}).n_probs == 20  # top_logprobs defaults to 20
    assert parse({"messages": MESSAGES, "logprobs": True, "top_logprobs": 0}).n_probs == 1  # then `logprobs` as int
    assert parse({"messages": MESSAGES, "logprobs": 3}).n_probs == 3  # the legacy integer form
    assert parse({"messages": MESSAGES, "n_probs": 4}).n_probs == 4
    assert parse({"messages": MESSAGES, "logprobs": False, "n_probs": 0}).n_probs == 0


def test_stop_and_logit_bias() -> None:
    assert parse({"messages": MESSAGES, "stop": "x"}).chat.sampling.stop == ["x"]
    assert parse({"messages": MESSAGES, "stop": ["a", None, [], "b"]}).chat.sampling.stop == ["a", "b"]
    bias = parse({"messages": MESSAGES, "logit_bias": {"5": 2.5, "7": False, "-1": 1, "999999": 1}}).chat.sampling
    assert bias.logit_bias == {5: 2.5, 7: -100.0}
    pairs = parse({"messages": MESSAGES, "logit_bias": [[9, 1e9], [True, 1], ["hello", -3], [1, "x"]]}).chat.sampling
    hello = get_encoding().encode("hello", disallowed_special=())
    assert pairs.logit_bias == {9: 100.0, **dict.fromkeys(hello, -3.0)}
    with pytest.raises(InvalidRequestError):
        parse({"messages": MESSAGES, "logit_bias": {str(i): 1 for i in range(request.MAX_LOGIT_BIAS + 1)}})


def test_tools_and_formats() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    parsed = parse({"messages": MESSAGES, "tools": tools, "tool_choice": "required"})
    assert [t.name for t in parsed.chat.tools] == ["f"] and parsed.chat.tool_choice.mode == "required"
    assert parse({"messages": MESSAGES, "tools": tools, "tool_choice": "none"}).chat.tool_choice.mode == "none"
    assert parse({"messages": MESSAGES, "tool_choice": "required"}).chat.tool_choice.mode == "none"  # no tools
    fmt = parse({"messages": MESSAGES, "response_format": {"type": "json_object"}}).chat.response_format
    assert fmt.type == "json_object"
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = parse({"messages": MESSAGES, "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}})
    assert fmt.chat.response_format.type == "json_schema" and fmt.chat.response_format.schema == schema
    with pytest.raises(errors.ParseError, match="Cannot use both json_schema and grammar"):
        parse({"messages": MESSAGES, "json_schema": {}, "grammar": "root ::= x"})


def test_messages_map_to_core() -> None:
    parsed = parse(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"type": "function", "id": "c1", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ]
        }
    )
    system, user, assistant, tool = parsed.chat.messages
    assert system.content == "Be brief." and user.content == "ab"
    assert assistant.content is None and [(c.id, c.name, c.arguments) for c in assistant.tool_calls] == [
        ("c1", "f", "{}")
    ]
    assert tool.tool_call_id == "c1" and tool.content == "42"
    with pytest.raises(errors.ParseError, match="key 'arguments' not found"):
        parse({"messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]}]})


def test_reasoning_effort_and_format() -> None:
    kwargs = {"chat_template_kwargs": {"reasoning_effort": "HIGH"}}
    assert parse({"messages": MESSAGES, **kwargs}).chat.reasoning_effort == "high"
    assert parse({"messages": MESSAGES, "reasoning_effort": "low"}).chat.reasoning_effort is None
    top_level = parse({"messages": MESSAGES, "reasoning_effort": "low"}, top_level_reasoning_effort=True)
    assert top_level.chat.reasoning_effort == "low"
    unknown = parse({"messages": MESSAGES, "chat_template_kwargs": {"reasoning_effort": "max"}})
    assert unknown.chat.reasoning_effort is None
    assert parse({"messages": MESSAGES}, reasoning_format="none").raw_reasoning
    assert not parse({"messages": MESSAGES, "reasoning_format": "auto"}, reasoning_format="none").raw_reasoning
    assert parse({"messages": MESSAGES, "reasoning_format": "deepseek-legacy", "stream": True}).raw_reasoning
    assert not parse({"messages": MESSAGES, "reasoning_format": "deepseek-legacy"}).raw_reasoning


# ---- error renderer -----------------------------------------------------------------------------------------


def test_error_info() -> None:
    settings = Dat1Settings()
    context = ContextLengthError("x", prompt_tokens=9000, max_context=8192)
    assert errors.error_info(context, settings) == {
        "code": 400,
        "message": errors.CONTEXT_ERROR_A,
        "type": "invalid_request_error",
    }
    assert errors.error_info(context, Dat1Settings(stream_era="C")) == {
        "code": 400,
        "message": "request (9000 tokens) exceeds the available context size (8192 tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 9000,
        "n_ctx": 8192,
    }
    parse_error = errors.ParseError("'messages' is required")
    assert errors.error_info(parse_error, settings)["code"] == 400
    assert errors.error_info(parse_error, Dat1Settings(parse_errors_as_server_error=True)) == {
        "code": 500,
        "message": "'messages' is required",
        "type": "server_error",
    }
    rendered = errors.render_error(RateLimitError("busy", retry_after=3))
    assert rendered.status_code == 429 and rendered.headers["retry-after"] == "3"
    assert json.loads(rendered.body)["error"]["type"] == "rate_limit_error"
