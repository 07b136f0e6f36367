"""Oxen's chat completion, keys sorted as its settings say."""

from __future__ import annotations

from typing import Any

from routes.oxen.settings import OxenSettings
from server.types import ChatResult, ToolCall


def sort_keys(value: Any) -> Any:
    """The same JSON value with every object's keys in alphabetical order (as Elixir small maps encode)."""
    if isinstance(value, dict):
        return {k: sort_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sort_keys(v) for v in value]
    return value


def tool_calls_body(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "index": i, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for i, c in enumerate(calls)
    ]


def completion_body(
    result: ChatResult, settings: OxenSettings, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    if result.tool_calls:
        # as in Oxen's documented tool-call example
        message: dict[str, Any] = {
            "content": result.content,
            "role": "assistant",
            "tool_calls": tool_calls_body(result.tool_calls),
        }
    else:
        message = {"role": "assistant", "content": result.content}
    if settings.reasoning_field:
        message[settings.reasoning_field] = result.reasoning
    usage = result.usage
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason}],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }
    return sort_keys(body) if settings.sort_keys == "all" else body
