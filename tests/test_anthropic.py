"""Anthropic's Messages API on the scripted engine, through the ``anthropic`` SDK and raw HTTP: messages and stream
events validated as the SDK's types, the SDK's stream accumulator, tool loops (the exact prompt of each turn),
thinking blocks round-tripped by their signature, usage, stop reasons, errors, and the model listing that answers
Anthropic's clients and OpenAI's on the same path."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pydantic
import pytest
from anthropic.types import Message, MessageTokensCount, ModelInfo, RawMessageStreamEvent

from server.engine.base import EngineStep, GenerationRequest
from server.errors import EngineUnavailableError
from tests.helpers import API_KEY, FailingEngine, LiveServer, WatchedEngine, scripted_settings, threaded_server

MODEL = "claude-sonnet-4-5"
HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
EVENTS = pydantic.TypeAdapter(RawMessageStreamEvent)
SYSTEM_HEADER = (
    "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n"
    "Current date: 2026-01-15\n\nReasoning: {effort}\n\n# Valid channels: analysis, commentary, final. Channel must be "
    "included for every message.\nCalls to these tools must go to the commentary channel: 'functions'.<|end|>"
)
WEATHER_DEVELOPER = (
    "<|start|>developer<|message|># Instructions\n\nAnswer briefly.\n\n# Tools\n\n## functions\n\nnamespace functions "
    "{\n\n// Current weather in a city.\ntype get_weather = (_: {\ncity: string,\n}) => any;\n\n} // namespace "
    "functions<|end|>"
)
CALL = (
    "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
    '<|message|>{"city":"Paris"}<|call|>'
)
RESULT = "<|start|>functions.get_weather<|channel|>commentary to=assistant<|message|>sunny, 18C<|end|>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, WatchedEngine]]:
    settings = scripted_settings(tmp_path_factory.mktemp("anthropic"))
    engine = WatchedEngine(settings.engine.scripted)
    with threaded_server(settings, engine) as live:
        yield live, engine


@pytest.fixture
def live(server: tuple[LiveServer, WatchedEngine]) -> LiveServer:
    return server[0]


@pytest.fixture
def engine(server: tuple[LiveServer, WatchedEngine]) -> WatchedEngine:
    return server[1]


@pytest.fixture
def client(live: LiveServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.base_url, api_key=API_KEY, max_retries=0)


def post(live: LiveServer, body: dict[str, Any], path: str = "/v1/messages", **headers: str) -> httpx.Response:
    return httpx.post(live.base_url + path, json=body, headers={**HEADERS, **headers}, timeout=30)


def ask(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": text}], **fields}


def events_of(raw: str) -> list[dict[str, Any]]:
    """Each SSE block as ``event: <type>`` + ``data: <json of that type>``, validated as the SDK's event types."""
    events = []
    for block in filter(None, raw.split("\n\n")):
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}", block
        if event["type"] not in ("ping", "error"):
            EVENTS.validate_python(event)
        events.append(event)
    return events


def error_of(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == kind and r.headers["request-id"] == body["request_id"]
    return str(body["error"]["message"])


# ---- messages ---------------------------------------------------------------------------------------------------


def test_create_validates_and_echoes_the_model(live: LiveServer, client: anthropic.Anthropic) -> None:
    r = post(live, ask("reason"))
    message = Message.model_validate(r.json())
    assert r.headers["request-id"].startswith("req_")
    assert message.id.startswith("msg_01") and len(message.id) == 28 and message.model == MODEL
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "User says hi. Reply politely."  # type: ignore[union-attr]
    assert message.content[1].text == "Hello! How can I help?"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    counted = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "reason"}])
    assert isinstance(counted, MessageTokensCount)
    assert message.usage.input_tokens == counted.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0
    sdk = client.messages.create(**ask("reason", model="any-name-at-all"))
    assert sdk.model == "any-name-at-all" and sdk.content[1].text == "Hello! How can I help?"  # type: ignore[union-attr]


def test_the_stream_is_framed_as_anthropic_frames_it(live: LiveServer) -> None:
    r = post(live, ask("reason", stream=True))
    assert r.headers["content-type"].startswith("text/event-stream") and r.headers["request-id"].startswith("req_")
    events = events_of(r.text)
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert 'event: ping\ndata: {"type": "ping"}\n\n' in r.text
    thinking = [e["delta"]["type"] for e in events if e["type"] == "content_block_delta" and e["index"] == 0]
    assert set(thinking[:-1]) == {"thinking_delta"} and thinking[-1] == "signature_delta"  # signature just before stop
    assert events[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert events[-2]["usage"]["output_tokens"] > 0


def test_messages_stream_accumulates_into_the_sdks_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "reason"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    created = client.messages.create(model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "reason"}])
    assert text == "Hello! How can I help?"
    assert [b.model_dump(exclude={"signature"}) for b in final.content] == [
        b.model_dump(exclude={"signature"}) for b in created.content
    ]
    assert final.stop_reason == "end_turn" and final.usage.input_tokens == created.usage.input_tokens
    assert final.usage.output_tokens == created.usage.output_tokens


def test_streamed_tool_use_accumulates_its_input(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "weather"}],  # type: ignore[list-item]
    ) as s:
        final = s.get_final_message()
    thinking, call = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Need the weather tool."
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
    assert call.id.startswith("toolu_01") and final.stop_reason == "tool_use"


# ---- tool loops and thinking ----------------------------------------------------------------------------------


def test_a_tool_loop_keeps_its_thinking_and_drops_it_after_the_answer(
    client: anthropic.Anthropic, engine: WatchedEngine
) -> None:
    """Claude Code's shape: ``display: "omitted"`` thinking (empty text, a signature), sent back with the call; the
    tool result is a harmony tool message, so the loop's reasoning (read from the signature) stays in the prompt;
    after the final answer and a new user message it is gone."""
    common: dict[str, Any] = {"model": MODEL, "max_tokens": 256, "system": "Answer briefly.", "tools": [WEATHER]}
    first = client.messages.create(**common, messages=[{"role": "user", "content": "forecast"}],
                                   thinking={"type": "adaptive", "display": "omitted"})  # fmt: skip
    thinking, call = first.content
    assert thinking.type == "thinking" and thinking.thinking == "" and thinking.signature
    assert call.type == "tool_use" and first.stop_reason == "tool_use"
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 18C"}
    history = [{"role": "user", "content": "forecast"}, first.to_param(), {"role": "user", "content": [result]}]
    second = client.messages.create(**common, messages=history)
    assert second.content[-1].text == "It is 18°C and sunny in Paris."  # type: ignore[union-attr]
    analysis = "<|start|>assistant<|channel|>analysis<|message|>Need the weather tool.<|end|>"
    head = SYSTEM_HEADER.format(effort="medium") + WEATHER_DEVELOPER + "<|start|>user<|message|>forecast<|end|>"
    assert engine.prompts[-1] == head + analysis + CALL + RESULT + "<|start|>assistant"
    third = [*history, second.to_param(), {"role": "user", "content": "reason"}]
    client.messages.create(**common, messages=third)
    answer = "<|start|>assistant<|channel|>final<|message|>It is 18°C and sunny in Paris.<|end|>"
    assert engine.prompts[-1] == (
        head + CALL + RESULT + answer + "<|start|>user<|message|>reason<|end|><|start|>assistant"
    )


def _loop_with(thinking_block: dict[str, Any], call_id: str = "toolu_01a") -> dict[str, Any]:
    call = {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}
    result = {"type": "tool_result", "tool_use_id": call_id, "content": "sunny"}
    return {
        "model": MODEL,
        "max_tokens": 256,
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "forecast"},
            {"role": "assistant", "content": [thinking_block, call]},
            {"role": "user", "content": [result]},
        ],
    }


def test_thinking_round_trips_by_its_signature_and_a_tampered_one_is_refused(
    live: LiveServer, engine: WatchedEngine
) -> None:
    first = post(live, ask("weather", tools=[WEATHER])).json()
    block = first["content"][0]
    assert block["type"] == "thinking" and block["thinking"] == "Need the weather tool."
    assert post(live, _loop_with(block)).status_code == 200
    assert "<|channel|>analysis<|message|>Need the weather tool.<|end|>" in engine.prompts[-1]
    signature = block["signature"]
    tampered = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    for bad in (
        {**block, "signature": tampered},
        {**block, "signature": "not a signature"},
        {**block, "thinking": "Something else entirely."},  # a valid signature over another text
        {"type": "redacted_thinking", "data": tampered},
    ):
        message = error_of(post(live, _loop_with(bad)), 400, "invalid_request_error")
        assert "Invalid `signature` in `thinking` block" in message and message.startswith("messages.1.content.0")
    redacted = {"type": "redacted_thinking", "data": signature}  # our own sealed text opens
    assert post(live, _loop_with(redacted)).status_code == 200


def test_the_sdk_raises_bad_request_for_a_tampered_signature(client: anthropic.Anthropic) -> None:
    body = _loop_with({"type": "thinking", "thinking": "x", "signature": "AAAA"})
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**body)
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_tool_results_error_flag_and_blocks_reach_the_prompt(live: LiveServer, engine: WatchedEngine) -> None:
    body = _loop_with({"type": "thinking", "thinking": "", "signature": post(live, ask("weather", tools=[WEATHER]))
                       .json()["content"][0]["signature"]})  # fmt: skip
    body["messages"][2]["content"] = [
        {"type": "tool_result", "tool_use_id": "toolu_01a", "is_error": True,
         "content": [{"type": "text", "text": "no such city"}, {"type": "tool_reference", "tool_name": "lookup"}]}
    ]  # fmt: skip
    assert post(live, body).status_code == 200
    assert "commentary to=assistant<|message|>Error: no such city\nTool loaded: lookup<|end|>" in engine.prompts[-1]


# ---- the request -----------------------------------------------------------------------------------------------


def test_a_claude_code_shaped_request_is_served(live: LiveServer, engine: WatchedEngine) -> None:
    """What Claude Code sends (captured from 2.1.x): ``?beta=true``, beta headers, system blocks with cache_control, a
    system turn inside messages, adaptive thinking shown as omitted, context_management, metadata, a deferred tool."""
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1;"},
                   {"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>\nBe kind.\n</system-reminder>\n"},
                                         {"type": "text", "text": "claude: say hello",
                                          "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": [{"type": "text", "text": "# Environment\nPlatform: linux"}]},
        ],
        "tools": [{**WEATHER, "cache_control": {"type": "ephemeral"}},
                  {"name": "Later", "description": "deferred", "input_schema": {"type": "object", "properties": {}},
                   "defer_loading": True},
                  {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": '{"device_id":"abc","session_id":"s"}'},
        "service_tier": "auto",
    }  # fmt: skip
    r = post(live, body, "/v1/messages?beta=true", **{"anthropic-beta": "claude-code-20250219,effort-2025-11-24"})
    events = events_of(r.text)
    thinking = [e for e in events if e["type"] == "content_block_delta" and e["index"] == 0]
    assert [e["delta"]["type"] for e in thinking] == ["signature_delta"]  # no thinking text: omitted
    assert "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta") == (
        "Hello from gpt-oss."
    )
    prompt = engine.prompts[-1]
    assert SYSTEM_HEADER.format(effort="high") in prompt
    assert ("# Instructions\n\nx-anthropic-billing-header: cc_version=2.1;\nYou are an agent.\n\n# Environment\n"
            "Platform: linux\n\n# Tools") in prompt  # fmt: skip
    assert "type Later = (_: {\n}) => any;" in prompt  # a deferred tool is offered at once
    assert "web_search" not in prompt  # Anthropic's own tools are not offered
    user = "<|start|>user<|message|><system-reminder>\nBe kind.\n</system-reminder>\n\nclaude: say hello<|end|>"
    assert user in prompt


@pytest.mark.parametrize(
    ("fields", "effort"),
    [
        ({}, "medium"),
        ({"thinking": {"type": "adaptive"}}, "medium"),
        ({"thinking": {"type": "disabled"}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "low"),
        ({"thinking": {"type": "enabled", "budget_tokens": 8000}}, "medium"),
        ({"thinking": {"type": "enabled", "budget_tokens": 20000}}, "high"),
        ({"output_config": {"effort": "low"}}, "low"),
        ({"output_config": {"effort": "max"}}, "high"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024}, "output_config": {"effort": "xhigh"}}, "high"),
    ],
)
def test_thinking_and_effort_set_harmonys_reasoning_effort(
    live: LiveServer, engine: WatchedEngine, fields: dict[str, Any], effort: str
) -> None:
    r = post(live, {**ask("reason"), "max_tokens": 30000, **fields})
    assert r.status_code == 200, r.text
    assert f"Reasoning: {effort}\n" in engine.prompts[-1]
    kinds = [b["type"] for b in r.json()["content"]]
    assert kinds == (["text"] if fields.get("thinking", {}).get("type") == "disabled" else ["thinking", "text"])


def test_stop_sequences_and_max_tokens_end_the_turn(live: LiveServer) -> None:
    stopped = post(live, ask("reason", stop_sequences=["How"])).json()
    assert stopped["stop_reason"] == "stop_sequence" and stopped["stop_sequence"] == "How"
    assert stopped["content"][-1] == {"type": "text", "text": "Hello! "}
    streamed = events_of(post(live, ask("reason", stop_sequences=["How"], stream=True)).text)
    assert streamed[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "How"}
    cut = post(live, ask("long", max_tokens=20)).json()
    assert cut["stop_reason"] == "max_tokens" and cut["usage"]["output_tokens"] == 20


def test_max_tokens_past_the_room_is_clamped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claude Code asks for 32,000 output tokens whatever the context: it gets what fits (an OpenAI client a 400)."""
    settings = scripted_settings(tmp_path, max_model_len=2048)
    settings.limits.max_output_tokens = None
    with threaded_server(settings) as live:
        engine = live.app.state.ctx.engine
        caps: list[int] = []
        original = engine.generate

        def recording(request: GenerationRequest) -> AsyncIterator[EngineStep]:
            caps.append(request.max_tokens)
            return original(request)  # type: ignore[no-any-return]

        monkeypatch.setattr(engine, "generate", recording)
        r = post(live, ask("reason", max_tokens=32000))
        assert r.status_code == 200, r.text
        assert caps == [2048 - r.json()["usage"]["input_tokens"]]
        chat = {"messages": [{"role": "user", "content": "reason"}], "max_tokens": 32000}
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        openai = httpx.post(live.base_url + "/v1/chat/completions", headers=bearer, json=chat)
        assert openai.status_code == 400


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        ([{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "http://x/cat.png"}}]}],
         "image content blocks are not supported: this model reads text only"),
        ([{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}],
         "document content blocks are not supported"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "The answer is ("}],
         "does not support assistant message prefill"),
        ([{"role": "user", "content": [{"type": "thinking", "thinking": "x", "signature": "y"}]}],
         "messages.0.content.0.type: Input tag 'thinking'"),
        ([{"role": "user", "content": []}], "all messages must have non-empty content"),
    ],
)  # fmt: skip
def test_what_gpt_oss_cannot_read_is_a_clear_400(live: LiveServer, messages: list[Any], needle: str) -> None:
    assert needle in error_of(post(live, {"model": MODEL, "max_tokens": 64, "messages": messages}), 400,
                              "invalid_request_error")  # fmt: skip


def test_validation_errors_name_the_field(live: LiveServer) -> None:
    missing = error_of(post(live, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}), 400,
                       "invalid_request_error")  # fmt: skip
    assert "max_tokens" in missing
    assert "temperature" in error_of(post(live, ask("hi", temperature=1.5)), 400, "invalid_request_error")
    budget = error_of(post(live, ask("hi", thinking={"type": "enabled", "budget_tokens": 512})), 400,
                      "invalid_request_error")  # fmt: skip
    assert "budget_tokens" in budget
    bad_name = {"name": "a b", "input_schema": {"type": "object"}}
    assert "tools.0.name" in error_of(post(live, ask("hi", tools=[bad_name])), 400, "invalid_request_error")
    choice = error_of(post(live, ask("hi", tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"})), 400,
                      "invalid_request_error")  # fmt: skip
    assert "nope" in choice


# ---- errors ------------------------------------------------------------------------------------------------------


def test_a_wrong_key_is_the_sdks_authentication_error(live: LiveServer) -> None:
    bad = anthropic.Anthropic(base_url=live.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
        "request_id": caught.value.request_id,
    }
    bearer = anthropic.Anthropic(base_url=live.base_url, auth_token=API_KEY, max_retries=0)  # Authorization: Bearer
    answer = bearer.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "reason"}])
    assert answer.content[-1].text == "Hello! How can I help?"  # type: ignore[union-attr]


def test_a_loading_engine_is_overloaded_529(live: LiveServer, client: anthropic.Anthropic) -> None:
    service = live.app.state.ctx.service
    service.loading = True
    try:
        with pytest.raises(anthropic.OverloadedError) as caught:
            client.messages.create(model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    finally:
        service.loading = False
    assert caught.value.status_code == 529 and caught.value.response.headers["retry-after"] == "5"


def test_a_failure_mid_stream_is_an_error_event(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    engine = FailingEngine(settings.engine.scripted, after=8, error=EngineUnavailableError("The engine died."))
    with threaded_server(settings, engine) as live:
        r = post(live, ask("long", stream=True))
        events = events_of(r.text)
        assert events[-1] == {"type": "error", "error": {"type": "overloaded_error", "message": "The engine died."}}
        assert "message_stop" not in [e["type"] for e in events]
        client = anthropic.Anthropic(base_url=live.base_url, api_key=API_KEY, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as caught, client.messages.stream(**ask("long")) as stream:
            stream.get_final_message()
        assert caught.value.body == events[-1]
        whole = post(live, ask("long"))
        assert error_of(whole, 529, "overloaded_error") == "The engine died."


# ---- usage --------------------------------------------------------------------------------------------------------


def test_cached_prompt_tokens_are_cache_reads_not_input(tmp_path: Path) -> None:
    """Anthropic's ``input_tokens`` excludes the tokens read from the cache; their sum is the whole prompt."""
    settings = scripted_settings(tmp_path, prefix_cache=True)
    with threaded_server(settings) as live:
        long_system = "You answer questions about the weather. " * 40
        body = ask("reason", system=long_system)
        first = post(live, body).json()["usage"]
        second = post(live, body).json()["usage"]
        streamed = events_of(post(live, {**body, "stream": True}).text)
    prompt = first["input_tokens"]
    assert first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] > 0 and second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] + second["cache_read_input_tokens"] == prompt
    start, delta = streamed[0]["message"]["usage"], streamed[-2]["usage"]
    assert start["input_tokens"] == prompt  # known before the prompt is processed: the whole prompt
    assert delta["input_tokens"] + delta["cache_read_input_tokens"] == prompt and delta["cache_read_input_tokens"] > 0


# ---- the model listing ---------------------------------------------------------------------------------------------


def test_models_answer_anthropics_clients_in_anthropics_shape(live: LiveServer, client: anthropic.Anthropic) -> None:
    page = client.models.list()
    names = [m.id for m in page.data]
    assert names[0] == "gpt-oss-120b" and all(isinstance(m, ModelInfo) for m in page.data)
    raw = httpx.get(live.base_url + "/v1/models", headers=HEADERS, timeout=10)
    body = raw.json()
    assert list(body) == ["data", "has_more", "first_id", "last_id"] and raw.headers["request-id"].startswith("req_")
    assert body["first_id"] == names[0] and body["last_id"] == names[-1] and body["has_more"] is False
    for model in body["data"]:
        info = ModelInfo.model_validate(model)
        assert model["type"] == "model" and info.created_at.isoformat() == "2025-08-05T00:00:00+00:00"
        assert list(model)[:4] == ["type", "id", "display_name", "created_at"]
    one = httpx.get(live.base_url + "/v1/models?limit=1", headers=HEADERS, timeout=10).json()
    assert [m["id"] for m in one["data"]] == names[:1] and one["has_more"] is True
    after = httpx.get(live.base_url + f"/v1/models?limit=1&after_id={names[0]}", headers=HEADERS, timeout=10).json()
    assert [m["id"] for m in after["data"]] == names[1:2]
    assert client.models.retrieve("gpt-oss-120b").display_name == "gpt-oss-120b"
    only_key = httpx.get(live.base_url + "/v1/models", headers={"x-api-key": API_KEY}, timeout=10).json()
    assert "has_more" in only_key  # x-api-key alone claims it too


def test_models_answer_openais_clients_in_openais_shape(live: LiveServer) -> None:
    bearer = {"Authorization": f"Bearer {API_KEY}"}
    listing = httpx.get(live.base_url + "/v1/models", headers=bearer, timeout=10).json()
    assert listing["object"] == "list" and listing["data"][0]["object"] == "model" and "has_more" not in listing
    one = httpx.get(live.base_url + "/v1/models/gpt-oss-120b", headers=bearer, timeout=10).json()
    assert one["object"] == "model" and "type" not in one
    wrong = httpx.get(live.base_url + "/v1/models", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401 and list(wrong.json()) == ["error"]  # OpenAI's envelope
    claimed = httpx.get(live.base_url + "/v1/models", headers={**HEADERS, "x-api-key": "nope"}, timeout=10)
    assert error_of(claimed, 401, "authentication_error") == "invalid x-api-key"
    method = httpx.post(live.base_url + "/v1/models", headers=HEADERS, timeout=10)
    assert error_of(method, 405, "invalid_request_error")


def _log_line(caplog: pytest.LogCaptureFixture, request_id: str) -> str:
    for _ in range(500):  # written once the server has finished sending
        for record in list(caplog.records):
            if record.name == "server.requests" and f'request_id="{request_id}"' in (line := record.getMessage()):
                return line
        time.sleep(0.01)
    raise AssertionError(f"no request line for {request_id}")


def test_the_request_log_names_the_claiming_api(live: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="server.requests"):
        for rid, headers in (("models-anthropic", HEADERS), ("models-openai", {"Authorization": f"Bearer {API_KEY}"})):
            r = httpx.get(live.base_url + "/v1/models", headers={**headers, "X-Request-Id": rid}, timeout=10)
            assert r.status_code == 200
        assert 'api="anthropic"' in _log_line(caplog, "models-anthropic")
        assert 'api="openai"' in _log_line(caplog, "models-openai")


def test_a_restricted_model_list_refuses_other_names(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    settings.providers.section("anthropic").any_model = False  # type: ignore[attr-defined]
    settings.providers.section("anthropic").model_aliases = ["claude-*"]  # type: ignore[attr-defined]
    with threaded_server(settings) as live:
        assert post(live, ask("reason", model="claude-haiku-4-5")).status_code == 200
        assert post(live, ask("reason", model="gpt-oss-120b")).status_code == 200
        assert error_of(post(live, ask("reason", model="gpt-4o")), 404, "not_found_error") == "model: gpt-4o"
        models = httpx.get(live.base_url + "/v1/models", headers=HEADERS, timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["gpt-oss-120b"]  # patterns are not listed
        missing = httpx.get(live.base_url + "/v1/models/gpt-4o", headers=HEADERS, timeout=10)
        assert error_of(missing, 404, "not_found_error") == "model: gpt-4o"
