"""The Responses API on the scripted engine: objects and events against OpenAI's schemas, the SDK's typed parsing,
tool loops (stored and stateless), background runs, the store across a restart, and refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pydantic
import pytest

from tests.helpers import API_KEY, FailingEngine, LiveServer, WatchedEngine, scripted_settings, threaded_server
from tests.responses_schema import check

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, WatchedEngine]]:
    settings = scripted_settings(tmp_path_factory.mktemp("responses"))
    engine = WatchedEngine(settings.engine.scripted)
    with threaded_server(settings, engine) as live:
        yield live, engine


@pytest.fixture
def live(server: tuple[LiveServer, WatchedEngine]) -> LiveServer:
    return server[0]


@pytest.fixture
def client(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.base_url + "/v1", api_key=API_KEY, max_retries=0)


def post(live: LiveServer, body: dict[str, Any], path: str = "/v1/responses", key: str = API_KEY) -> httpx.Response:
    return httpx.post(live.base_url + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def sse_events(raw: str) -> list[dict[str, Any]]:
    """Each event's JSON; its ``event:`` line must name the payload's type."""
    events = []
    for block in filter(None, raw.split("\n\n")):
        lines = block.split("\n")
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        event = json.loads(lines[1][len("data: ") :])
        assert lines[0] == f"event: {event['type']}"
        events.append(event)
    return events


def stream(live: LiveServer, body: dict[str, Any]) -> list[dict[str, Any]]:
    r = post(live, {**body, "stream": True})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        check("ResponseStreamEvent", event)
    return events


def without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k not in ("id", "created_at", "completed_at", "call_id")}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    return value


# ---- objects and events -------------------------------------------------------------------------------


def test_a_response_with_reasoning_validates(live: LiveServer) -> None:
    r = post(live, {"model": "gpt-oss-120b", "input": "reason"})
    assert r.status_code == 200, r.text
    body = r.json()
    check("Response", body)
    assert body["id"].startswith("resp_") and body["object"] == "response" and body["status"] == "completed"
    reasoning, message = body["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "User says hi. Reply politely."}]
    assert "encrypted_content" not in reasoning
    assert message["type"] == "message" and message["id"].startswith("msg_") and message["status"] == "completed"
    assert message["content"] == [
        {"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello! How can I help?"}
    ]
    usage = body["usage"]
    assert usage["output_tokens_details"]["reasoning_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert body["store"] is True and body["tools"] == [] and body["tool_choice"] == "auto"


def test_the_stream_has_openais_events_in_order_and_folds_to_the_object(live: LiveServer) -> None:
    events = stream(live, {"model": "gpt-oss-120b", "input": "reason"})
    types = [e["type"] for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed" and types.count("response.completed") == 1
    reasoning_at = types.index("response.reasoning_text.delta")
    assert types[reasoning_at - 1] == "response.content_part.added"
    assert types.index("response.reasoning_text.done") < types.index("response.output_text.delta")
    tail = types[types.index("response.output_text.done") :]
    assert tail == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert final["output"][1]["content"][0]["text"] == text
    assert [e["item"] for e in events if e["type"] == "response.output_item.done"] == final["output"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    plain = post(live, {"model": "gpt-oss-120b", "input": "reason"}).json()
    assert without_ids(final) == without_ids(plain)


def test_the_sdk_parses_objects_streams_and_structured_output(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-oss-120b", input="reason", instructions="Be brief.")
    assert response.output_text == "Hello! How can I help?"
    assert response.instructions == "Be brief."
    with client.responses.stream(model="gpt-oss-120b", input="reason") as events:
        kinds = [type(e).__name__ for e in events]
        final = events.get_final_response()
    assert "ResponseTextDeltaEvent" in kinds and "ResponseReasoningTextDeltaEvent" in kinds
    assert final.output_text == "Hello! How can I help?"

    class City(pydantic.BaseModel):
        city: str
        temp_c: int

    parsed = client.responses.parse(model="gpt-oss-120b", input="city json", text_format=City)
    assert parsed.output_parsed == City(city="Paris", temp_c=18)
    assert parsed.text.format.type == "json_schema"  # type: ignore[union-attr]


def test_codexs_tools_are_accepted_and_namespaces_rendered(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, engine = server
    namespace = {
        "type": "namespace",
        "name": "agents",
        "description": "Tools for sub-agents.",
        "tools": [{"type": "function", "name": "spawn", "description": "Start one.", "strict": False,
                   "parameters": {"type": "object", "properties": {"task": {"type": "string"}}}}],
    }  # fmt: skip
    body = {
        "model": "gpt-oss-120b",
        "input": [
            {"type": "message", "id": "msg_client_1", "role": "developer",
             "content": [{"type": "input_text", "text": "You are a coding agent."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "namespaced"}]},
        ],
        "tools": [WEATHER_TOOL, namespace, {"type": "web_search", "external_web_access": False}],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "thread-1",
        "client_metadata": {"x-codex-turn-metadata": "{}"},
    }  # fmt: skip
    events = stream(live, body)
    prompt = engine.prompts[-1]
    assert "namespace agents {" in prompt and "namespace functions {" in prompt and "web_search" not in prompt
    assert "You are a coding agent." in prompt
    final = events[-1]["response"]
    (call,) = final["output"]
    assert call["type"] == "function_call" and call["namespace"] == "agents" and call["name"] == "spawn"
    assert json.loads(call["arguments"]) == {"task": "triage"} and call["call_id"].startswith("call_")
    assert final["store"] is False


# ---- tool loops -------------------------------------------------------------------------------------


def test_a_tool_loop_with_previous_response_id(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, engine = server
    first = post(live, {"model": "gpt-oss-120b", "input": "forecast", "tools": [WEATHER_TOOL],
                        "instructions": "Answer in one line."}).json()  # fmt: skip
    _, call = first["output"]
    assert call["type"] == "function_call" and call["name"] == "get_weather" and call["status"] == "completed"
    second = post(
        live,
        {
            "model": "gpt-oss-120b",
            "previous_response_id": first["id"],
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny, 18C"}],
            "tools": [WEATHER_TOOL],
            "instructions": "Answer in French.",
            "reasoning": {"effort": "high"},
        },
    )
    assert second.status_code == 200, second.text
    body = second.json()
    check("Response", body)
    assert body["output"][-1]["content"][0]["text"] == "It is 18°C and sunny in Paris."
    assert body["previous_response_id"] == first["id"] and body["reasoning"]["effort"] == "high"
    prompt = engine.prompts[-1]
    # the new request's instructions and effort apply, the old ones are gone
    assert "Answer in French." in prompt and "Answer in one line." not in prompt and "Reasoning: high" in prompt
    # the chain of thought is kept inside the tool loop, then the call and its result
    assert prompt.endswith(
        "<|start|>user<|message|>forecast<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Need the weather tool.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city":"Paris"}<|call|>'
        "<|start|>functions.get_weather<|channel|>commentary to=assistant<|message|>sunny, 18C<|end|>"
        "<|start|>assistant"
    ), prompt[-600:]
    # after the final answer, the next turn drops that reasoning
    third = post(live, {"model": "gpt-oss-120b", "previous_response_id": body["id"], "input": "reason"}).json()
    assert third["status"] == "completed"
    prompt = engine.prompts[-1]
    assert "Need the weather tool." not in prompt and "The tool says 18C" not in prompt
    assert "<|channel|>final<|message|>It is 18°C and sunny in Paris.<|end|>" in prompt


def test_a_stateless_tool_loop_with_encrypted_reasoning(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, engine = server
    user = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "forecast"}]}
    common = {"model": "gpt-oss-120b", "tools": [WEATHER_TOOL], "store": False,
              "include": ["reasoning.encrypted_content"]}  # fmt: skip
    first = post(live, {**common, "input": [user]}).json()
    reasoning, call = first["output"]
    sealed = reasoning["encrypted_content"]
    assert isinstance(sealed, str) and "Need the weather tool." not in sealed
    assert httpx.get(f"{live.base_url}/v1/responses/{first['id']}", headers=HEADERS).status_code == 404
    # the client hands back only the sealed blob: the reasoning is restored from it
    returned = {"type": "reasoning", "id": reasoning["id"], "summary": [], "encrypted_content": sealed}
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    second = post(live, {**common, "input": [user, returned, call, output]})
    assert second.status_code == 200, second.text
    assert second.json()["output"][-1]["content"][0]["text"] == "It is 18°C and sunny in Paris."
    assert "<|channel|>analysis<|message|>Need the weather tool.<|end|>" in engine.prompts[-1]
    # a tampered blob, or one sealed under another key, is the client's error
    tampered = sealed[:-8] + ("A" if sealed[-8] != "A" else "B") + sealed[-7:]
    for blob in (tampered, "not base64 at all!", "gAAAAABfake"):
        bad = post(live, {**common, "input": [user, {**returned, "encrypted_content": blob}, call, output]})
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"]["param"] == "input[1].encrypted_content"


# ---- retrieval, listing, deletion, keys ----------------------------------------------------------------


def test_get_input_items_delete_and_another_keys_view(live: LiveServer) -> None:
    created = post(live, {"model": "gpt-oss-120b", "input": [
        {"role": "developer", "content": "Be kind."}, {"role": "user", "content": "reason"}]}).json()  # fmt: skip
    url = f"{live.base_url}/v1/responses/{created['id']}"
    got = httpx.get(url, headers=HEADERS).json()
    assert got == created
    items = httpx.get(url + "/input_items", headers=HEADERS).json()
    check("ResponseItemList", items)
    assert [i["content"][0]["text"] for i in items["data"]] == ["reason", "Be kind."]  # newest first
    asc = httpx.get(url + "/input_items", params={"order": "asc", "limit": 1}, headers=HEADERS).json()
    assert [i["role"] for i in asc["data"]] == ["developer"] and asc["has_more"] is True
    other = {"Authorization": "Bearer second-key-xyz"}
    assert httpx.get(url, headers=other).status_code == 404
    assert httpx.delete(url, headers=other).status_code == 404
    deleted = httpx.delete(url, headers=HEADERS)
    assert deleted.json() == {"id": created["id"], "object": "response", "deleted": True}
    missing = httpx.get(url, headers=HEADERS)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_input_tokens_counts_what_create_would_send(live: LiveServer) -> None:
    body = {"model": "gpt-oss-120b", "input": "reason", "tools": [WEATHER_TOOL]}
    counted = post(live, body, "/v1/responses/input_tokens").json()
    check("TokenCountsResource", counted)
    assert counted["input_tokens"] == post(live, body).json()["usage"]["input_tokens"]


# ---- endings -------------------------------------------------------------------------------------------


def test_max_output_tokens_ends_incomplete(live: LiveServer) -> None:
    body = {"model": "gpt-oss-120b", "input": "long", "max_output_tokens": 20}
    plain = post(live, body).json()
    check("Response", plain)
    assert plain["status"] == "incomplete" and plain["incomplete_details"] == {"reason": "max_output_tokens"}
    assert plain["output"][-1]["status"] == "incomplete"
    events = stream(live, body)
    assert events[-1]["type"] == "response.incomplete"
    assert not any(e["type"] == "response.completed" for e in events)


def test_an_engine_failure_mid_stream_is_an_error_event_then_failed(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    engine = FailingEngine(settings.engine.scripted, after=3, error=RuntimeError("device lost"))
    with threaded_server(settings, engine) as live:
        events = stream(live, {"model": "gpt-oss-120b", "input": "long"})
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error"


# ---- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({"model": "no-such-model"}, 404, None),
        ({"temperature": 3}, 400, "temperature"),
        ({"max_output_tokens": 10_000_000}, 400, "max_output_tokens"),
        ({"include": ["reasoning.everything"]}, 400, "include"),
        ({"tools": [{"type": "teleport"}]}, 400, "tools[0].type"),
        ({"tools": [{"type": "function", "name": "bad name"}]}, 400, "tools[0].name"),
        ({"tool_choice": {"type": "function", "name": "missing"}}, 400, "tool_choice"),
        ({"tool_choice": "required"}, 400, "tool_choice"),  # no function to call
        (
            {"input": [{"type": "message", "role": "user", "content": [{"type": "input_image"}]}]},
            400,
            "input[0].content[0].type",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_nope"}]}, 400, "input[0].id"),
        ({"input": None}, 400, "input"),
        ({"previous_response_id": "resp_missing"}, 404, "previous_response_id"),
        ({"background": True, "store": False}, 400, "background"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, 400, "text.format.schema"),
        ({"conversation": "conv_123"}, 400, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, 400, "prompt"),
        ({"input": [{"type": ["message"], "role": "user", "content": "x"}]}, 400, "input[0].type"),
        ({"input": [{"type": "message", "role": ["user"], "content": "x"}]}, 400, "input[0].role"),
        (
            {"input": [{"type": "message", "role": "user", "content": [{"type": [], "text": "x"}]}]},
            400,
            "input[0].content[0].type",
        ),
        ({"tools": [{"type": {}}]}, 400, "tools[0]"),
        (
            {"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": []}]}},
            200,
            None,
        ),
        ({"tools": [{"type": "namespace", "name": "n" * 60_000, "tools": []}]}, 400, "tools[0].name"),
        (
            {"tools": [{"type": "namespace", "name": "ns", "description": "d" * 70_000, "tools": []}]},
            400,
            "tools[0].description",
        ),
        (
            {
                "input": [
                    {"type": "function_call", "call_id": "c", "name": "f", "namespace": "x" * 60_000, "arguments": "{}"}
                ]
            },
            400,
            "input[0].namespace",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "a", "id": "msg_1"},
                    {"role": "user", "content": "b", "id": "msg_1"},
                ]
            },
            400,
            "input[1].id",
        ),
    ],
)
def test_wrong_requests_are_refused_in_openais_envelope(
    live: LiveServer, fields: dict[str, Any], status: int, param: str | None
) -> None:
    r = post(live, {"model": "gpt-oss-120b", "input": "reason", **fields})
    assert r.status_code == status, r.text
    if status == 200:
        return
    error = r.json()["error"]
    assert list(error) == ["message", "type", "param", "code"]
    if param is not None:
        assert error["param"] == param, error


def test_unknown_fields_a_client_sends_are_tolerated(live: LiveServer) -> None:
    r = post(live, {"model": "gpt-oss-120b", "input": "reason", "client_metadata": {"a": "b"},
                    "service_tier": "auto", "stream_options": {"include_obfuscation": False},
                    "text": {"verbosity": "low"}, "reasoning": {"effort": "minimal"}})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["reasoning"]["effort"] == "minimal" and r.json()["text"]["verbosity"] == "low"


def test_a_function_tool_without_strict_or_parameters_is_echoed_valid(live: LiveServer) -> None:
    body = {"model": "gpt-oss-120b", "input": "reason", "tools": [{"type": "function", "name": "ping"}]}
    plain = post(live, body).json()
    check("Response", plain)
    # OpenAI's defaults: strict unless the request says otherwise
    assert plain["tools"] == [
        {"type": "function", "name": "ping", "description": None, "parameters": None, "strict": True}
    ]
    stream(live, body)  # every event validates


def test_missing_key_is_a_401(live: LiveServer) -> None:
    r = httpx.post(live.base_url + "/v1/responses", json={"input": "reason"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert post(live, {"input": "reason"}, "/openai/v1/responses").status_code == 200


# ---- background -----------------------------------------------------------------------------------------


def poll(live: LiveServer, response_id: str, until: tuple[str, ...], timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = httpx.get(f"{live.base_url}/v1/responses/{response_id}", headers=HEADERS).json()
        if body["status"] in until or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_background_runs_detached_can_be_polled_and_replayed(live: LiveServer) -> None:
    queued = post(live, {"model": "gpt-oss-120b", "input": "reason", "background": True}).json()
    check("Response", queued)
    assert queued["status"] == "queued" and queued["background"] is True
    done = poll(live, queued["id"], ("completed",))
    assert done["status"] == "completed" and done["output"][-1]["content"][0]["text"] == "Hello! How can I help?"
    r = httpx.get(f"{live.base_url}/v1/responses/{queued['id']}", params={"stream": "true"}, headers=HEADERS)
    events = sse_events(r.text)
    for event in events:
        check("ResponseStreamEvent", event)
    assert events[-1]["type"] == "response.completed" and events[-1]["response"] == done
    later = httpx.get(f"{live.base_url}/v1/responses/{queued['id']}",
                      params={"stream": "true", "starting_after": 3}, headers=HEADERS)  # fmt: skip
    assert sse_events(later.text)[0]["sequence_number"] == 4


def test_a_background_response_can_be_followed_and_cancelled(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path, token_delay_s=0.02)
    with threaded_server(settings) as live:
        queued = post(live, {"model": "gpt-oss-120b", "input": "long", "background": True}).json()
        with httpx.stream("GET", f"{live.base_url}/v1/responses/{queued['id']}", params={"stream": "true"},
                          headers=HEADERS, timeout=30) as r:  # fmt: skip
            lines = r.iter_lines()
            for line in lines:
                if line == "event: response.output_text.delta":
                    break
            cancelled = httpx.post(f"{live.base_url}/v1/responses/{queued['id']}/cancel", headers=HEADERS).json()
            rest = list(lines)
        assert cancelled["status"] == "cancelled"
        assert not any("response.completed" in line for line in rest)
        assert poll(live, queued["id"], ("cancelled",))["status"] == "cancelled"
        plain = post(live, {"model": "gpt-oss-120b", "input": "reason"}).json()
        cancel = httpx.post(f"{live.base_url}/v1/responses/{plain['id']}/cancel", headers=HEADERS)
        assert cancel.status_code == 400


# ---- durability ------------------------------------------------------------------------------------------


def test_a_stored_response_survives_a_restart(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    with threaded_server(settings) as live:
        first = post(live, {"model": "gpt-oss-120b", "input": "forecast", "tools": [WEATHER_TOOL]}).json()
    with threaded_server(settings) as live:
        again = httpx.get(f"{live.base_url}/v1/responses/{first['id']}", headers=HEADERS)
        assert again.status_code == 200 and again.json() == first
        call = first["output"][-1]
        follow = post(live, {"model": "gpt-oss-120b", "previous_response_id": first["id"], "tools": [WEATHER_TOOL],
                             "input": [{"type": "function_call_output", "call_id": call["call_id"],
                                        "output": "sunny"}]})  # fmt: skip
        assert follow.json()["output"][-1]["content"][0]["text"] == "It is 18°C and sunny in Paris."


def test_a_json_schema_format_is_echoed_as_the_schema_has_it(live: LiveServer) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    fmt = {"type": "json_schema", "name": "city", "schema": schema, "strict": True}
    body = post(live, {"model": "gpt-oss-120b", "input": "city json", "text": {"format": fmt}}).json()
    check("Response", body)
    assert body["text"]["format"] == fmt and json.loads(body["output"][-1]["content"][0]["text"])["city"] == "Paris"


def test_output_text_logprobs_when_included(live: LiveServer) -> None:
    body = {"model": "gpt-oss-120b", "input": "reason", "include": ["message.output_text.logprobs"], "top_logprobs": 1}
    plain = post(live, body).json()
    check("Response", plain)
    part = plain["output"][-1]["content"][0]
    assert "".join(t["token"] for t in part["logprobs"]) == part["text"] == "Hello! How can I help?"
    assert all(t["logprob"] == 0.0 and len(t["top_logprobs"]) == 1 for t in part["logprobs"])
    events = stream(live, body)
    deltas = [e for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(t["token"] for e in deltas for t in e["logprobs"]) == part["text"]
    assert post(live, {"model": "gpt-oss-120b", "input": "reason"}).json()["output"][-1]["content"][0]["logprobs"] == []


def test_truncation_auto_drops_the_oldest_items_to_fit(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path, max_model_len=400)
    history = []
    for turn in range(12):
        history += [{"role": "user", "content": f"question {turn} " + "word " * 20},
                    {"role": "assistant", "content": f"answer {turn} " + "word " * 20}]  # fmt: skip
    body = {"model": "gpt-oss-120b", "input": [*history, {"role": "user", "content": "reason"}],
            "max_output_tokens": 40}  # fmt: skip
    with threaded_server(settings) as live:
        refused = post(live, body)
        assert refused.status_code == 400 and "context" in refused.json()["error"]["message"].lower(), refused.text
        fitted = post(live, {**body, "truncation": "auto"})
        assert fitted.status_code == 200, fitted.text
        out = fitted.json()
        assert out["truncation"] == "auto" and out["output"][-1]["content"][0]["text"] == "Hello! How can I help?"
        assert out["usage"]["input_tokens"] + 40 <= 400
        # what was stored as this response's input is the request's, whole
        items = httpx.get(f"{live.base_url}/v1/responses/{out['id']}/input_items", params={"limit": 100},
                          headers=HEADERS).json()  # fmt: skip
        assert len(items["data"]) == len(body["input"])


def test_a_preamble_before_a_call_comes_back_as_commentary_and_keeps_the_loops_reasoning(
    server: tuple[LiveServer, WatchedEngine],
) -> None:
    live, engine = server
    first = post(live, {"model": "gpt-oss-120b", "input": "preamble forecast", "tools": [WEATHER_TOOL]}).json()
    assert [i["type"] for i in first["output"]] == ["reasoning", "message", "function_call"]
    call = first["output"][-1]
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    follow = post(live, {"model": "gpt-oss-120b", "previous_response_id": first["id"], "tools": [WEATHER_TOOL],
                         "input": [output]})  # fmt: skip
    assert follow.json()["output"][-1]["content"][0]["text"] == "Sunny it is."
    assert engine.prompts[-1].endswith(
        "<|start|>user<|message|>preamble forecast<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Check the tool.<|end|>"
        "<|start|>assistant<|channel|>commentary<|message|>Let me check the weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city":"Paris"}<|call|>'
        "<|start|>functions.get_weather<|channel|>commentary to=assistant<|message|>sunny<|end|><|start|>assistant"
    ), engine.prompts[-1][-700:]


def test_the_sdk_retrieves_with_include(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-oss-120b", input="reason")
    plain = client.responses.retrieve(created.id)
    sealed = client.responses.retrieve(created.id, include=["reasoning.encrypted_content"])
    assert plain.output[0].encrypted_content is None  # type: ignore[union-attr]
    assert isinstance(sealed.output[0].encrypted_content, str)  # type: ignore[union-attr]


def test_owners_survive_a_change_of_the_key_list(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    settings = scripted_settings(tmp_path)
    settings = settings.model_copy(update={"auth": settings.auth.model_copy(update={"api_keys_file": keys})})
    keys.write_text("key-one-aaaaaaaa\nkey-two-bbbbbbbb\n")
    with threaded_server(settings) as live:
        made = post(live, {"model": "gpt-oss-120b", "input": "reason"}, key="key-two-bbbbbbbb").json()
    keys.write_text("key-two-bbbbbbbb\nkey-three-cccccccc\n")  # key one revoked: key two is now the first line
    with threaded_server(settings) as live:
        url = f"{live.base_url}/v1/responses/{made['id']}"
        assert httpx.get(url, headers={"Authorization": "Bearer key-two-bbbbbbbb"}).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Bearer key-three-cccccccc"}).status_code == 404


def test_background_edge_cases(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path, token_delay_s=0.01)
    with threaded_server(settings) as live:
        url = f"{live.base_url}/v1/responses"
        # deleted while running: it stays deleted
        running = post(live, {"model": "gpt-oss-120b", "input": "long", "background": True}).json()
        assert httpx.delete(f"{url}/{running['id']}", headers=HEADERS).status_code == 200
        time.sleep(0.3)
        assert httpx.get(f"{url}/{running['id']}", headers=HEADERS).status_code == 404
        # a follower of a cancelled run sees its open item closed
        queued = post(live, {"model": "gpt-oss-120b", "input": "long", "background": True}).json()
        time.sleep(0.2)
        httpx.post(f"{url}/{queued['id']}/cancel", headers=HEADERS)
        events = sse_events(httpx.get(f"{url}/{queued['id']}", params={"stream": "true"}, headers=HEADERS).text)
        assert events[0]["response"]["status"] == "queued" and events[1]["type"] == "response.in_progress"
        assert events[-1]["type"] == "response.output_item.done" and events[-1]["item"]["status"] == "incomplete"
        # resuming after the end still gets the terminal event
        done = post(live, {"model": "gpt-oss-120b", "input": "reason", "background": True}).json()
        final = poll(live, done["id"], ("completed",))
        assert final["status"] == "completed"
        resumed = httpx.get(f"{url}/{done['id']}", params={"stream": "true", "starting_after": 5}, headers=HEADERS)
        assert sse_events(resumed.text)[-1]["type"] == "response.completed"


def test_max_background_holds_under_concurrency(tmp_path: Path) -> None:
    import concurrent.futures

    settings = scripted_settings(tmp_path, token_delay_s=0.05)
    section = settings.providers.responses.model_copy(update={"max_background": 1})  # type: ignore[attr-defined]
    settings = settings.model_copy(update={"providers": settings.providers.model_copy(update={"responses": section})})
    with threaded_server(settings) as live, concurrent.futures.ThreadPoolExecutor(8) as pool:
        body = {"model": "gpt-oss-120b", "input": "long", "background": True}
        statuses = sorted(r.status_code for r in pool.map(lambda _: post(live, body), range(8)))
    assert statuses == [200] + [429] * 7, statuses
