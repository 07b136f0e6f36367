"""Scripted transcripts: turns written as reasoning / content / tool calls become the harmony text the model would
write (the decoder reads back exactly what was written), and rules apply by the last user message, the turn number
(user messages so far) and the tool result the prompt ends with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from pydantic import ValidationError

from server.engine.scripted import ScriptedEngine
from server.harmony.decode import HarmonyDecoder
from server.harmony.encoding import get_encoding
from server.harmony.script import turn_tokens
from server.settings import ScriptedSettings, ScriptRule
from server.types import Delta
from tests.helpers import SCRIPT_RULES, scripted_settings, threaded_server


def decoded(tokens: list[int], namespaces: frozenset[str] = frozenset()) -> tuple[str, str, list[tuple[str, str]]]:
    decoder = HarmonyDecoder(namespaces=namespaces)
    deltas: list[Delta] = [decoder.feed([t]) for t in tokens] + [decoder.finish()]
    calls: dict[int, list[str]] = {}
    for delta in deltas:
        for part in delta.tool_calls:
            call = calls.setdefault(part.index, ["", ""])
            if part.name:
                call[0] = f"{part.namespace}.{part.name}" if part.namespace else part.name
            call[1] += part.arguments
    return (
        "".join(d.reasoning for d in deltas),
        "".join(d.content for d in deltas),
        [(name, args) for name, args in (calls[i] for i in sorted(calls))],
    )


@pytest.mark.parametrize(
    ("reasoning", "content", "calls"),
    [
        ("Think first.", "The answer: 42 °C, «quoted» and\nmultiline.", []),
        (None, "Only an answer.", []),
        ("Need the tool.", None, [("get_weather", '{"city":"Paris"}')]),
        ("Two at once.", "Let me check both.", [("get_weather", '{"city":"Oslo"}'), ("get_time", '{"tz":"CET"}')]),
        (None, None, [("agents.spawn", '{"task":"triage"}')]),
    ],
)
def test_the_decoder_reads_back_exactly_what_the_turn_says(
    reasoning: str | None, content: str | None, calls: list[tuple[str, str]]
) -> None:
    tokens = turn_tokens(reasoning, content, calls)
    assert decoded(tokens, frozenset({"agents"})) == (reasoning or "", content or "", calls)
    assert tokens[-1] == (200012 if calls else 200002)  # <|call|> ends a turn of calls, <|return|> an answer
    assert sum(t in (200002, 200012) for t in tokens) == 1  # one stop token: the engine stops only at the end


def test_a_turn_renders_as_the_harmony_text_the_model_writes() -> None:
    weather = next(r for r in SCRIPT_RULES if r["match"] == "^weather$")
    parallel = next(r for r in SCRIPT_RULES if r["match"] == "^parallel tools$")
    encoding = get_encoding()
    text = turn_tokens("Need the weather tool.", None, [("get_weather", '{"city":"Paris"}')])
    assert text == encoding.encode(weather["text"], allowed_special="all")
    calls = [("get_weather", '{"city":"Paris"}'), ("get_time", '{"tz":"CET"}')]
    assert turn_tokens(None, None, calls) == encoding.encode(parallel["text"], allowed_special="all")


def test_a_rule_is_harmony_text_or_parts_never_both_nor_neither() -> None:
    ScriptRule(text="<|channel|>final<|message|>hi<|return|>")
    ScriptRule(content="hi", tool_calls=[{"name": "f", "arguments": {"a": [1, "é"]}}])
    with pytest.raises(ValidationError, match="either harmony"):
        ScriptRule(text="x", content="y")
    with pytest.raises(ValidationError, match="either harmony"):
        ScriptRule(match="x")
    with pytest.raises(ValidationError):
        ScriptRule(turn=0, content="x")


TRANSCRIPT = """\
rules:
  # the tool loop's second turn (the prompt ends with the tool's result) is listed before its first
  - match: weather in (\\w+)
    tool_output: sunny
    reasoning: The tool says sunny.
    content: It is sunny.
  - match: weather in (\\w+)
    reasoning: Need the weather tool.
    tool_calls:
      - name: get_weather
        arguments: {city: Paris, days: 2}
  - turn: 1
    content: First turn.
  - turn: 2
    reasoning: A second user message.
    content: Second turn.
  - text: "<|channel|>final<|message|>Raw harmony, third turn or later.<|return|>"
"""


@pytest.fixture
def client(tmp_path: Path) -> Any:
    path = tmp_path / "transcript.yaml"
    path.write_text(TRANSCRIPT)
    settings = scripted_settings(tmp_path)
    scripted = ScriptedSettings(mode="replay", rules_file=path)
    settings = settings.model_copy(update={"engine": settings.engine.model_copy(update={"scripted": scripted})})
    with threaded_server(settings) as live:
        yield openai.OpenAI(base_url=live.base_url + "/v1", api_key=live.api_key, max_retries=0)


def ask(client: Any, messages: list[dict[str, Any]], **extra: Any) -> Any:
    return client.chat.completions.create(model="gpt-oss-120b", messages=messages, **extra).choices[0].message


def reasoning(message: Any) -> str | None:
    """The reasoning the route sent (vLLM's ``reasoning`` field, an extra to the SDK's model)."""
    extra = message.model_extra or {}
    return extra.get("reasoning") or extra.get("reasoning_content")


def test_rules_apply_by_turn_number(client: Any) -> None:
    first = ask(client, [{"role": "user", "content": "hello"}])
    assert (first.content, reasoning(first)) == ("First turn.", None)
    history = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": first.content}]
    second = ask(client, [*history, {"role": "user", "content": "and?"}])
    assert second.content == "Second turn." and reasoning(second) == "A second user message."
    history += [{"role": "user", "content": "and?"}, {"role": "assistant", "content": second.content}]
    assert ask(client, [*history, {"role": "user", "content": "more"}]).content == "Raw harmony, third turn or later."


def test_a_tool_loop_from_yaml(client: Any) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    question = {"role": "user", "content": "weather in Paris?"}
    call_turn = ask(client, [question], tools=tools)
    (call,) = call_turn.tool_calls
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city":"Paris","days":2}')
    assert reasoning(call_turn) == "Need the weather tool."
    result = {"role": "tool", "tool_call_id": call.id, "content": "sunny, 18C"}
    answer = ask(client, [question, call_turn.model_dump(exclude_none=True), result], tools=tools)
    assert answer.content == "It is sunny." and reasoning(answer) == "The tool says sunny."


def test_the_turn_number_counts_user_messages() -> None:
    engine = ScriptedEngine(ScriptedSettings())
    encoding = get_encoding()
    prompt = encoding.encode(
        "<|start|>system<|message|>user<|end|><|start|>user<|message|>a<|end|>"
        "<|start|>assistant<|channel|>final<|message|>b<|end|><|start|>user<|message|>user c<|end|><|start|>assistant",
        allowed_special="all",
    )
    assert engine.user_turns(prompt) == 2
    assert yaml.safe_load(TRANSCRIPT)["rules"][2] == {"turn": 1, "content": "First turn."}
