"""Contract case for Ollama's chat API (``POST /api/chat``).

The generic tests speak OpenAI's chat: ``body`` turns its messages into Ollama's (tool-call ``arguments`` as
objects, a tool result's ``name`` as ``tool_name``, ``reasoning_content`` as ``thinking``) and its sampling fields
into ``options`` (``max_tokens`` as ``num_predict``); ``response_format`` becomes ``format``. What has no Ollama
spelling is sent as given; what it cannot translate keeps a shape Ollama refuses too (arguments that are not a JSON
object stay a string, a ``response_format`` that is not an object becomes a list), so a malformed input stays
malformed. ``/api/generate`` takes a prompt, not a conversation: tests/test_ollama.py holds its contract.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from routes.ollama import ids
from routes.ollama.options import KINDS
from tests.contract import Call, ProviderCase

MODEL = "gpt-oss:120b"
# chat spellings of sampling fields -> Ollama's option names
OPTION_NAMES = {"max_tokens": "num_predict", "max_completion_tokens": "num_predict"}
OPTION_NAMES["repetition_penalty"] = "repeat_penalty"


def check_error(r: requests.Response, status: int) -> None:
    """Ollama's ``{"error": "<text>"}``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"], body


def pin(monkeypatch: Any) -> None:
    counter = iter(range(10**6))
    monkeypatch.setattr(ids, "new_call_id", lambda: f"call_{next(counter):08d}")
    monkeypatch.setattr(ids, "now_ns", lambda: 1_770_614_085_123_456_789)


# ---- chat -> Ollama ------------------------------------------------------------------------------------------


def _arguments(value: Any) -> Any:
    """OpenAI's arguments (JSON text) as Ollama's object; anything else in a shape Ollama refuses."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, dict) else value
    return json.dumps(value) if isinstance(value, dict) else value


def _call(call: Any) -> Any:
    if not isinstance(call, dict):
        return call
    out = {k: v for k, v in call.items() if k != "function"}
    function = call.get("function")
    if isinstance(function, dict):
        function = {**function, **({"arguments": _arguments(function["arguments"])} if "arguments" in function else {})}
    if "function" in call:
        out["function"] = function
    return out


def _message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out: dict[str, Any] = {}
    for key, value in message.items():
        if key == "tool_calls":
            out[key] = [_call(c) for c in value] if isinstance(value, list) else value
        elif key in ("reasoning_content", "reasoning"):
            out["thinking"] = value
        elif key == "name" and message.get("role") == "tool":
            out["tool_name"] = value
        else:
            out[key] = value
    return out


def to_messages(messages: Any) -> Any:
    return [_message(m) for m in messages] if isinstance(messages, list) else messages


def _format(value: Any) -> Any:
    """A chat ``response_format`` as Ollama's ``format``."""
    if not isinstance(value, dict):
        return [value]
    kind = value.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        return spec.get("schema", {}) if isinstance(spec, dict) else spec
    return "" if kind == "text" else kind


def body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"model": MODEL, "messages": to_messages(messages), "stream": stream}
    options: dict[str, Any] = {}
    for key, value in extra.items():
        if key == "messages":
            out["messages"] = to_messages(value)
        elif key in OPTION_NAMES or key in KINDS:
            options[OPTION_NAMES.get(key, key)] = value
        elif key == "response_format":
            out["format"] = _format(value)
        elif key == "reasoning_effort":
            out["think"] = value
        else:
            out[key] = value
    if options:
        out["options"] = options
    return out


# ---- readers -------------------------------------------------------------------------------------------------


def _calls(message: dict[str, Any]) -> list[Call]:
    return [
        Call(c["id"], c["function"]["name"], json.dumps(c["function"]["arguments"], separators=(",", ":")))
        for c in message.get("tool_calls") or []
    ]


def finish_of(r: dict[str, Any]) -> str | None:
    """``done_reason`` in the chat vocabulary (Ollama reports a tool call as ``stop``)."""
    return "tool_calls" if r["message"].get("tool_calls") else r.get("done_reason")


def stream_finish_of(payloads: list[dict[str, Any]]) -> str | None:
    last = [p for p in payloads if p.get("done")]
    return finish_of(last[-1]) if last else None


# Ollama's options (temperature 0-2, top_p in (0,1], penalties -2..2, repeat_penalty in (0,10]: this server's
# bounds, Ollama checks none), and num_ctx narrowing the context
SAMPLING: dict[str, Any] = {
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 20,
    "min_p": 0.1,
    "seed": 42,
    "stop": ["END"],
    "repeat_penalty": 1.1,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.25,
    "num_predict": 50,
    "num_ctx": 4096,
}
EXPECTED: dict[str, Any] = {
    **{k: v for k, v in SAMPLING.items() if k not in ("repeat_penalty", "num_predict", "num_ctx")},
    "repetition_penalty": 1.1,
    "max_tokens": 50,
}
RANGE_ERRORS: list[dict[str, Any]] = [
    {"temperature": 2.5},
    {"temperature": -1},
    {"top_p": 0},
    {"top_p": 1.5},
    {"min_p": 1.5},
    {"repeat_penalty": 0},
    {"presence_penalty": 3},
    {"top_k": 2_000_000},
    {"seed": 2**64},
    {"top_logprobs": 21},
]


CASES = [
    ProviderCase(
        name="ollama",
        chat_path="/api/chat",
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=body,
        text_of=lambda r: r["message"]["content"],
        stream_text_of=lambda payloads: "".join(p["message"]["content"] for p in payloads if "message" in p),
        check_error=check_error,
        invalid_fields={"temperature": 99},
        unknown_model_fields={"model": "no-such-model"},
        named_messages=False,
        terminator=None,
        stream_format="ndjson",
        is_last=lambda p: p.get("done") is True or "error" in p,
        zero_values=True,
        json_media_type="browsers",
        pin=pin,
        reasoning_of=lambda r: r["message"].get("thinking", ""),
        stream_reasoning_of=lambda ps: "".join(p["message"].get("thinking", "") for p in ps if "message" in p),
        tool_calls_of=lambda r: _calls(r["message"]),
        stream_tool_calls_of=lambda payloads: [c for p in payloads if "message" in p for c in _calls(p["message"])],
        finish_of=finish_of,
        stream_finish_of=stream_finish_of,
        # format: "json" or a schema; no tool_choice in Ollama's API (a forced call cannot be asked for)
        json_schema_fields=lambda schema: {"format": schema},
        named_tool_fields=None,
        required_tool_fields=None,
        # logprobs: Ollama's cover harmony's control tokens and its answer has no usage (tests/test_ollama.py)
        length_fields=lambda n: {"num_predict": n},
        effort_fields={"think": "high"},
        sampling_fields=SAMPLING,
        expected_sampling=EXPECTED,
        range_errors=RANGE_ERRORS,
    )
]
