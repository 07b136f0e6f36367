"""AI/ML API's OpenRouter-shaped chat completion, with ``meta.usage`` pricing."""

from __future__ import annotations

from typing import Any

from routes.aimlapi.settings import AimlapiSettings
from server.types import ChatResult, Usage


def js_number(value: float) -> int | float:
    """Numbers as JavaScript prints them (``2480``, not ``2480.0``)."""
    return int(value) if float(value).is_integer() else value


def cost(usage: Usage, settings: AimlapiSettings) -> tuple[int | float, int | float]:
    """(credits_used, usd_spent) at the configured prices."""
    usd = (
        usage.prompt_tokens * settings.usd_per_million_prompt_tokens
        + usage.completion_tokens * settings.usd_per_million_completion_tokens
    ) / 1_000_000
    return js_number(round(usd * settings.credits_per_usd)), js_number(round(usd, 10))


def meta_body(usage: Usage, settings: AimlapiSettings) -> dict[str, Any]:
    credits, usd = cost(usage, settings)
    return {"usage": {"credits_used": credits, "usd_spent": usd}}


def finish_reason(reason: str) -> str:
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def completion_body(
    result: ChatResult, *, completion_id: str, created: int, model: str, settings: AimlapiSettings
) -> dict[str, Any]:
    content = result.content
    if content is None and settings.tool_call_content == "empty":
        content = ""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "reasoning_content": result.reasoning,
        "refusal": None,
    }
    if result.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in result.tool_calls
        ]
    usage = result.usage
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "choices": [
            {"index": 0, "finish_reason": finish_reason(result.finish_reason), "logprobs": None, "message": message}
        ],
        "created": created,
        "model": model,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            # the spec's nullable {cached_tokens}: set when the prefix cache served part of the prompt
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens} if usage.cached_tokens else None,
        },
    }
    if settings.include_meta:
        body["meta"] = meta_body(usage, settings)
    return body
