"""Contract cases for Anthropic's Messages API (``POST /v1/messages``, and with ``?beta=true`` as Claude Code sends
it).

The generic tests speak chat: ``body`` turns chat messages into Messages content blocks and chat-spelled fields into
Anthropic's (tools, tool_choice, response_format, reasoning_effort, stop). What it cannot translate (a wrongly shaped
message, tool or call) it passes on in the nearest Anthropic spelling, malformed the same way, so that the route sees
the malformed input a client would send it.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import requests

from routes.anthropic import ids, signatures
from tests.contract import Call, ProviderCase

MODEL = "claude-sonnet-4-5"
DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens
# one of these ends every stream (no terminator)
TERMINAL_EVENTS = frozenset({"message_stop", "error"})
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def check_error(r: requests.Response, status: int) -> None:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}`` and the ``request-id`` header."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["type", "error", "request_id"] and body["type"] == "error", body
    assert list(body["error"]) == ["type", "message"] and body["error"]["type"] == ERROR_TYPES[status], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert r.headers["request-id"] == body["request_id"] and body["request_id"].startswith("req_")


def pin(monkeypatch: Any) -> None:
    counter = itertools.count()
    monkeypatch.setattr(ids, "new_id", lambda prefix: f"{prefix}_01{next(counter):022d}")
    monkeypatch.setattr(signatures, "sign", lambda sealer, thinking: f"sig-{len(thinking)}")


# ---- chat -> Messages ----------------------------------------------------------------------------------------


def _tool_use(call: Any) -> Any:
    """A chat tool call as a ``tool_use`` block (arguments that are no JSON text stay text: an invalid ``input``)."""
    if not isinstance(call, dict):
        return call
    function = call.get("function")
    block: dict[str, Any] = {"type": "tool_use" if call.get("type", "function") == "function" else call["type"]}
    if "id" in call:
        block["id"] = call["id"]
    if not isinstance(function, dict):
        block["name"] = function
        return block
    if "name" in function:
        block["name"] = function["name"]
    arguments = function.get("arguments", "{}")
    try:
        block["input"] = json.loads(arguments) if isinstance(arguments, str) else json.dumps(arguments)
    except ValueError:
        block["input"] = arguments
    return block


def _assistant(message: dict[str, Any]) -> dict[str, Any]:
    blocks: list[Any] = []
    reasoning = message.get("reasoning_content", message.get("reasoning"))
    if reasoning is not None:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    content = message.get("content")
    if isinstance(content, str):
        blocks.append({"type": "text", "text": content})
    elif content is not None:
        blocks += content if isinstance(content, list) else [content]
    calls = message.get("tool_calls")
    if calls is not None:
        blocks += [_tool_use(c) for c in calls] if isinstance(calls, list) else [calls]
    return {"role": "assistant", "content": blocks}


def _message(message: Any) -> Any:
    if not isinstance(message, dict) or "role" not in message:
        return message
    role = message["role"]
    if role == "assistant":
        return _assistant(message)
    if role == "tool":
        block: dict[str, Any] = {"type": "tool_result", "content": message.get("content")}
        if "tool_call_id" in message:
            block["tool_use_id"] = message["tool_call_id"]
        return {"role": "user", "content": [block]}
    out = {k: v for k, v in message.items() if k != "name"}  # messages have no name
    if role == "developer":
        out["role"] = "system"  # folded into the system prompt, as a system message inside messages is
    return out


def to_messages(messages: Any) -> Any:
    return [_message(m) for m in messages] if isinstance(messages, list) else messages


def _tool(tool: Any) -> Any:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        return tool
    function = tool["function"]
    out = {k: v for k, v in function.items() if k in ("name", "description")}
    out["input_schema"] = function.get("parameters", {"type": "object", "properties": {}})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name")}
    return choice


def _format(response_format: Any) -> Any:
    """A chat ``response_format`` as ``output_config.format``."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema")
        return {"type": "json_schema", "schema": schema.get("schema") if isinstance(schema, dict) else schema}
    return response_format


def body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    """A Messages body; the chat-spelled fields of ``extra`` under Anthropic's names, others as given."""
    out: dict[str, Any] = {"model": MODEL, "max_tokens": DEFAULT_MAX_TOKENS, "messages": to_messages(messages)}
    if stream:
        out["stream"] = True
    config: dict[str, Any] = {}
    for key, value in extra.items():
        if key == "messages":
            out["messages"] = to_messages(value)
        elif key == "max_completion_tokens":
            out["max_tokens"] = value
        elif key == "tools":
            out["tools"] = [_tool(t) for t in value] if isinstance(value, list) else value
        elif key == "tool_choice":
            out["tool_choice"] = _tool_choice(value)
        elif key == "response_format":
            config["format"] = _format(value)
        elif key == "reasoning_effort":
            config["effort"] = value
        elif key == "stop":
            out["stop_sequences"] = value
        else:
            out[key] = value
    if config:
        out["output_config"] = {**out.get("output_config", {}), **config}
    return out


# ---- readers -------------------------------------------------------------------------------------------------


def _blocks(r: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for b in r.get("content") or [] if b.get("type") == kind]


def text_of(r: dict[str, Any]) -> str:
    return "".join(b["text"] for b in _blocks(r, "text"))


def reasoning_of(r: dict[str, Any]) -> str:
    return "".join(b["thinking"] for b in _blocks(r, "thinking"))


def tool_calls_of(r: dict[str, Any]) -> list[Call]:
    return [Call(b["id"], b["name"], json.dumps(b["input"], separators=(",", ":"))) for b in _blocks(r, "tool_use")]


_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def finish_of(r: dict[str, Any]) -> str | None:
    """``stop_reason`` in the chat vocabulary."""
    return _FINISH.get(r.get("stop_reason") or "")


def _started(payloads: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {p["index"]: p["content_block"] for p in payloads if p.get("type") == "content_block_start"}


def _deltas(payloads: list[dict[str, Any]], kind: str, field: str) -> str:
    return "".join(
        p["delta"][field] for p in payloads if p.get("type") == "content_block_delta" and p["delta"]["type"] == kind
    )


def stream_text_of(payloads: list[dict[str, Any]]) -> str:
    return _deltas(payloads, "text_delta", "text")


def stream_reasoning_of(payloads: list[dict[str, Any]]) -> str:
    return _deltas(payloads, "thinking_delta", "thinking")


def stream_tool_calls_of(payloads: list[dict[str, Any]]) -> list[Call]:
    """Blocks opened by ``content_block_start``, their ``input_json_delta`` parts joined, as the SDK folds them."""
    calls: dict[int, dict[str, str]] = {}
    for index, block in _started(payloads).items():
        if block["type"] == "tool_use":
            calls[index] = {"id": block["id"], "name": block["name"], "arguments": ""}
    for p in payloads:
        if p.get("type") == "content_block_delta" and p["delta"]["type"] == "input_json_delta":
            calls[p["index"]]["arguments"] += p["delta"]["partial_json"]
    return [Call(c["id"], c["name"], json.dumps(json.loads(c["arguments"] or "{}"), separators=(",", ":")))
            for c in calls.values()]  # fmt: skip


def stream_finish_of(payloads: list[dict[str, Any]]) -> str | None:
    reasons = [p["delta"]["stop_reason"] for p in payloads if p.get("type") == "message_delta"]
    return _FINISH.get(reasons[-1] or "") if reasons else None


SAMPLING: dict[str, Any] = {"temperature": 0.5, "top_p": 0.9, "top_k": 20, "stop_sequences": ["zzz"], "max_tokens": 50}
EXPECTED: dict[str, Any] = {"temperature": 0.5, "top_p": 0.9, "top_k": 20, "stop": ["zzz"], "max_tokens": 50}
RANGE_ERRORS: list[dict[str, Any]] = [
    {"max_tokens": 0},
    {"temperature": 1.5},  # Anthropic's range is 0-1
    {"top_p": 1.5},
    {"top_k": -1},
    {"thinking": {"type": "enabled", "budget_tokens": 100}},  # at least 1,024
    {"thinking": {"type": "enabled", "budget_tokens": 2048}},  # not below max_tokens (1,024 here)
    {"output_config": {"effort": "maximum"}},
]

CASES = [
    ProviderCase(
        name=name,
        chat_path=path,
        auth_headers=lambda key: {"x-api-key": key},
        alternate_auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=body,
        text_of=text_of,
        stream_text_of=stream_text_of,
        check_error=check_error,
        unknown_model_fields=None,  # any model name is served (providers.anthropic.any_model)
        named_messages=False,
        terminator=None,
        terminal_events=TERMINAL_EVENTS,
        pin=pin,
        reasoning_of=reasoning_of,
        stream_reasoning_of=stream_reasoning_of,
        tool_calls_of=tool_calls_of,
        stream_tool_calls_of=stream_tool_calls_of,
        finish_of=finish_of,
        stream_finish_of=stream_finish_of,
        json_schema_fields=lambda schema: {"output_config": {"format": {"type": "json_schema", "schema": schema}}},
        named_tool_fields=lambda name: {"tool_choice": {"type": "tool", "name": name}},
        required_tool_fields={"tool_choice": {"type": "any"}},
        effort_fields={"output_config": {"effort": "high"}},
        seeded=False,  # Anthropic's Messages API has no seed
        sampling_fields=SAMPLING,
        expected_sampling=EXPECTED,
        range_errors=RANGE_ERRORS,
    )
    for name, path in (("anthropic", "/v1/messages"), ("anthropic-beta", "/v1/messages?beta=true"))
]
