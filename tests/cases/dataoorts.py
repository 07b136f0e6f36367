"""Contract case for Dataoorts (``POST /api/v1``, Cloudflare Workers AI envelope)."""

from __future__ import annotations

from typing import Any

import requests

from tests.contract import Call, ProviderCase

MODEL = "openai/gpt-oss-120b"


def check_error(r: requests.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["result", "success", "errors", "messages"]
    assert body["success"] is False and body["messages"] == []
    (error,) = body["errors"]
    assert list(error) == ["code", "message"]
    assert isinstance(error["code"], int) and isinstance(error["message"], str) and error["message"]


def body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    """The wrapper: ``model`` at top level, everything else inside ``data``."""
    extra = dict(extra)
    model = extra.pop("model", MODEL)
    return {"model": model, "data": {"messages": messages, "stream": stream, **extra}}


def stream_text(payloads: list[dict[str, Any]]) -> str:
    return "".join(p.get("response") or "" for p in payloads)


def calls(items: list[dict[str, Any]]) -> list[Call]:
    return [Call(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in items]


def stream_calls(payloads: list[dict[str, Any]]) -> list[Call]:
    """Whole tool calls in one event (the classic Workers AI stream has no argument deltas)."""
    return [call for p in payloads for call in calls(p.get("tool_calls") or [])]


# Cloudflare's ranges: temperature 0-5, top_p 0.001-1, top_k 1-50, seed 1-9999999999, repetition_penalty 0-2
SAMPLING: dict[str, Any] = {
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 20,
    "seed": 9_999_999_999,
    "repetition_penalty": 1.1,
    "frequency_penalty": 0.25,
    "presence_penalty": 0.5,
    "max_tokens": 50,
}
RANGE_ERRORS: list[dict[str, Any]] = [
    {"temperature": 5.5},
    {"top_p": 0},
    {"top_k": 51},
    {"seed": 0},
    {"seed": 10_000_000_000},
    {"repetition_penalty": 2.5},
    {"max_tokens": 0},
    {"max_tokens": 10_000_000},  # past the context window
]


CASES = [
    ProviderCase(
        name="dataoorts",
        chat_path="/api/v1",
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=body,
        text_of=lambda r: r["result"]["response"],
        stream_text_of=stream_text,
        check_error=check_error,
        invalid_fields={"temperature": 5.5},
        unknown_model_fields={"model": "no-such-model"},
        unknown_model_status=400,
        # the documented envelope has no reasoning (providers.dataoorts.include_reasoning adds one) and no finish
        # reason, tool_choice, stop or logprobs; Cloudflare's response_format puts the schema in json_schema
        reasoning_of=lambda r: r["result"].get("reasoning", ""),
        stream_reasoning_of=lambda payloads: "".join(p.get("reasoning", "") for p in payloads),
        carries_reasoning=False,
        tool_calls_of=lambda r: calls(r["result"]["tool_calls"]),
        stream_tool_calls_of=stream_calls,
        finish_of=lambda r: None,
        stream_finish_of=lambda payloads: None,
        json_schema_fields=lambda schema: {"response_format": {"type": "json_schema", "json_schema": schema}},
        named_tool_fields=None,
        required_tool_fields=None,
        effort_fields={"reasoning": {"effort": "high"}},
        sampling_fields=SAMPLING,
        expected_sampling=SAMPLING,
        range_errors=RANGE_ERRORS,
    )
]
