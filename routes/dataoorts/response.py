"""The Workers AI result (``{response, tool_calls, usage}`` or a chat completion) in Cloudflare's envelope."""

from __future__ import annotations

from typing import Any

from routes.dataoorts import ids
from routes.dataoorts.settings import DataoortsSettings
from server.types import (
    ChatResult,
    ToolCall,
)


def tool_calls_body(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def result_body(result: ChatResult, settings: DataoortsSettings, model: str) -> dict[str, Any]:
    usage = result.usage
    if settings.result_shape == "chat_completion":
        message: dict[str, Any] = {"role": "assistant", "content": result.content, "refusal": None}
        if settings.include_reasoning:
            message["reasoning_content"] = result.reasoning
        if result.tool_calls:
            message["tool_calls"] = tool_calls_body(result.tool_calls)
        return {
            "id": ids.new_id(),
            "object": "chat.completion",
            "created": ids.now(),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason, "logprobs": None}],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
    body: dict[str, Any] = {}
    if settings.include_reasoning:
        body["reasoning"] = result.reasoning or ""
    body["response"] = result.content or ""
    body["tool_calls"] = tool_calls_body(result.tool_calls)
    body["usage"] = {
        "completion_tokens": usage.completion_tokens,
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.total_tokens,
    }
    return body


def envelope(result: dict[str, Any]) -> dict[str, Any]:
    return {"errors": [], "messages": [], "result": result, "success": True}
