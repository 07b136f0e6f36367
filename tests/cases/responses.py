"""Contract cases for OpenAI's Responses API (``POST /v1/responses``, also under ``/openai/v1``).

The generic tests speak chat: ``body`` turns chat messages into Responses ``input`` items and chat-spelled fields
into the Responses names. What it cannot translate (a wrongly shaped message, tool or call) it passes on as sent,
so that the route sees the same malformed input a client would send it.
"""

from __future__ import annotations

import itertools
from typing import Any

import requests

from routes.responses import ids
from routes.responses.request import OUTPUT_LOGPROBS
from tests.contract import Call, ProviderCase

MODEL = "gpt-oss-120b"
# the terminal events: exactly one ends every stream (no ``[DONE]``)
TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def check_error(r: requests.Response, status: int) -> None:
    """OpenAI's ``{"error": {message, type, param, code}}``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["message", "type", "param", "code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def pin(monkeypatch: Any) -> None:
    counter = itertools.count()
    monkeypatch.setattr(ids, "new_id", lambda prefix: f"{prefix}_{next(counter):048x}")
    monkeypatch.setattr(ids, "now", lambda: 1770614085.0)


# ---- chat -> Responses ---------------------------------------------------------------------------------------


def _parts(content: Any, text_type: str) -> Any:
    """Chat content parts in the Responses spelling (``text`` -> ``input_text``/``output_text``); others as sent."""
    if not isinstance(content, list):
        return content
    return [{**p, "type": text_type} if isinstance(p, dict) and p.get("type") == "text" else p for p in content]


def _call(call: Any) -> Any:
    """A chat tool call as a ``function_call`` item (a call of another ``type`` keeps it)."""
    if not isinstance(call, dict):
        return call
    function = call.get("function")
    item: dict[str, Any] = {"type": "function_call" if call.get("type", "function") == "function" else call["type"]}
    if "id" in call:
        item["call_id"] = call["id"]
    if isinstance(function, dict):
        item |= {k: function[k] for k in ("name", "arguments") if k in function}
    elif function is not None:
        item["function"] = function
    return item


def _message(message: dict[str, Any]) -> list[Any]:
    """One chat message as its items; keys with no Responses spelling (``name``, ...) stay on its own item."""
    if "role" not in message:
        return [message]
    role = message["role"]
    rest = {k: v for k, v in message.items() if k not in ("role", "content", "tool_calls", "tool_call_id")}
    if role == "tool":
        item = {"type": "function_call_output", "output": _parts(message.get("content"), "input_text")}
        if "tool_call_id" in message:
            item["call_id"] = message["tool_call_id"]
        return [item | rest]
    if role != "assistant":
        item = {"type": "message", "role": "developer" if role == "system" else role}
        if "content" in message:
            item["content"] = _parts(message["content"], "input_text")
        return [item | rest]
    items: list[Any] = []
    reasoning = rest.pop("reasoning_content", rest.pop("reasoning", None))
    if reasoning is not None:
        items.append({"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": reasoning}]})
    calls = message.get("tool_calls")
    if message.get("content") is not None or not calls:  # without calls it is a message, even with no content
        content = _parts(message.get("content"), "output_text")
        items.append({"type": "message", "role": "assistant", "content": content} | rest)
    if calls is not None:
        items += [_call(c) for c in calls] if isinstance(calls, list) else [calls]
    return items


def to_input(messages: Any) -> Any:
    """Chat messages as Responses input items; anything but a list as sent."""
    if not isinstance(messages, list):
        return messages
    return [item for m in messages for item in (_message(m) if isinstance(m, dict) else [m])]


def _tool(tool: Any) -> Any:
    if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return {"type": "function", **tool["function"]}
    return tool


def _format(response_format: Any) -> dict[str, Any]:
    """A chat ``response_format`` as ``text.format`` (``json_schema``'s fields move up one level)."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema")
        if isinstance(schema, dict):
            return {"format": {"type": "json_schema", **schema}}
    return {"format": response_format}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    """A Responses body; the chat-spelled fields of ``extra`` under their Responses names, others as given."""
    out: dict[str, Any] = {"model": MODEL, "input": to_input(messages), "stream": stream}
    for key, value in extra.items():
        if key == "messages":
            out["input"] = to_input(value)
        elif key in ("max_tokens", "max_completion_tokens"):
            out["max_output_tokens"] = value
        elif key == "tools":
            out["tools"] = [_tool(t) for t in value] if isinstance(value, list) else value
        elif key == "tool_choice":
            out["tool_choice"] = _tool_choice(value)
        elif key == "response_format":
            out["text"] = _format(value)
        elif key == "reasoning_effort":
            out["reasoning"] = {"effort": value}
        else:
            out[key] = value
    return out


# ---- readers -------------------------------------------------------------------------------------------------


def _items(r: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item for item in r.get("output") or [] if item.get("type") == kind]


def text_of(r: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for m in _items(r, "message") for p in m["content"] if p["type"] == "output_text")


def reasoning_of(r: dict[str, Any]) -> str:
    return "".join(p["text"] for item in _items(r, "reasoning") for p in item.get("content") or [])


def tool_calls_of(r: dict[str, Any]) -> list[Call]:
    return [Call(c["call_id"], c["name"], c["arguments"]) for c in _items(r, "function_call")]


def finish_of(r: dict[str, Any]) -> str | None:
    """The status in the chat vocabulary: completed is ``stop`` (``tool_calls`` when it called functions);
    incomplete for ``max_output_tokens`` is ``length``; failed is ``error``."""
    status = r.get("status")
    if status == "completed":
        return "tool_calls" if _items(r, "function_call") else "stop"
    if status == "incomplete":
        reason = (r.get("incomplete_details") or {}).get("reason")
        return "length" if reason == "max_output_tokens" else str(reason)
    return "error" if status == "failed" else None


def _deltas(payloads: list[dict[str, Any]], kind: str) -> str:
    return "".join(p["delta"] for p in payloads if p.get("type") == kind)


def stream_text_of(payloads: list[dict[str, Any]]) -> str:
    return _deltas(payloads, "response.output_text.delta")


def stream_reasoning_of(payloads: list[dict[str, Any]]) -> str:
    return _deltas(payloads, "response.reasoning_text.delta")


def stream_tool_calls_of(payloads: list[dict[str, Any]]) -> list[Call]:
    """Calls opened by ``output_item.added``, their arguments appended from the deltas of their ``item_id``, as the
    SDK folds them."""
    calls: dict[str, dict[str, str]] = {}
    for p in payloads:
        item = p.get("item") or {}
        if p.get("type") == "response.output_item.added" and item.get("type") == "function_call":
            calls[item["id"]] = {"id": item["call_id"], "name": item["name"], "arguments": item["arguments"]}
        elif p.get("type") == "response.function_call_arguments.delta":
            calls[p["item_id"]]["arguments"] += p["delta"]
    return [Call(**c) for c in calls.values()]


def stream_finish_of(payloads: list[dict[str, Any]]) -> str | None:
    ends = [p["response"] for p in payloads if p.get("type") in TERMINAL_EVENTS]
    return finish_of(ends[-1]) if ends else None


# OpenAI's sampling fields (logprobs through ``include``) and the vLLM extras the route takes
SAMPLING: dict[str, Any] = {
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 20,
    "min_p": 0.1,
    "seed": 42,
    "repetition_penalty": 1.1,
    "max_output_tokens": 50,
    "top_logprobs": 2,
    "include": [OUTPUT_LOGPROBS],
}
EXPECTED: dict[str, Any] = {
    **{k: v for k, v in SAMPLING.items() if k not in ("max_output_tokens", "include")},
    "max_tokens": 50,
    "logprobs": True,
}
RANGE_ERRORS: list[dict[str, Any]] = [
    {"max_output_tokens": 0},
    {"max_output_tokens": 10_000_000},  # past the context window
    {"temperature": 2.5},
    {"top_p": 1.5},
    {"top_logprobs": 21},
    {"top_k": -2},
    {"min_p": 1.5},
    {"repetition_penalty": 0},
    {"max_tool_calls": 0},
]


CASES = [
    ProviderCase(
        name=name,
        chat_path=path,
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=body,
        text_of=text_of,
        stream_text_of=stream_text_of,
        check_error=check_error,
        unknown_path="/resp_0/no-such-endpoint",
        conversation_field="input",
        text_conversation=True,
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
        json_schema_fields=lambda schema: {
            "text": {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}}
        },
        named_tool_fields=lambda name: {"tool_choice": {"type": "function", "name": name}},
        # no logprobs_fields: output_text logprobs cover the answer's text only (not the reasoning) and name no
        # token ids, so the engine test's token-by-token check has nothing to hold them to; no ignore_eos either
        # no sdk_base: the parity tests' SDK calls are chat completions
        length_fields=lambda n: {"max_output_tokens": n},
        effort_fields={"reasoning": {"effort": "high"}},
        sampling_fields=SAMPLING,
        expected_sampling=EXPECTED,
        range_errors=RANGE_ERRORS,
    )
    for name, path in (("responses", "/v1/responses"), ("responses-prefixed", "/openai/v1/responses"))
]
