"""AI/ML API's OpenRouter-shaped stream: role and content in every delta, whole tool calls, a usage chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from routes.aimlapi.errors import error_body
from routes.aimlapi.response import finish_reason, meta_body
from routes.aimlapi.settings import AimlapiSettings
from server.errors import (
    InternalError,
)
from server.http.jsonio import SSE_DONE, sse_event
from server.types import Delta, Event, Finish, ToolCallDelta


async def encode_stream(
    events: AsyncIterator[Event],
    *,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    settings: AimlapiSettings,
    path: str,
) -> AsyncIterator[bytes]:
    """OpenAI chunks with ``usage: null``, ``reasoning_content`` deltas, a finish chunk, then a
    ``choices: []`` usage chunk (with ``meta``) and ``[DONE]``."""
    role_sent = False

    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None, **extra: Any) -> bytes:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage,
        }
        body.update(extra)
        return sse_event(body)

    def delta_chunk(fields: dict[str, Any], reason: str | None = None) -> bytes:
        nonlocal role_sent
        delta: dict[str, Any] = {}
        if settings.stream_role_every_chunk or not role_sent:
            delta["role"] = "assistant"
            role_sent = True
        delta["content"] = fields.pop("content", "")
        delta.update(fields)
        return chunk([{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}])

    def call_body(part: ToolCallDelta) -> dict[str, Any]:
        if part.id is None:
            return {"index": part.index, "function": {"arguments": part.arguments}}
        return {
            "index": part.index,
            "id": part.id,
            "function": {"arguments": part.arguments, "name": part.name},
            "type": "function",
        }

    pending: ToolCallDelta | None = None  # a whole call being collected (stream_whole_tool_calls)
    try:
        async for event in events:
            if isinstance(event, Delta):
                if event.reasoning:
                    yield delta_chunk({"reasoning_content": event.reasoning})
                if event.content:
                    yield delta_chunk({"content": event.content})
                for part in event.tool_calls:
                    if not settings.stream_whole_tool_calls:
                        yield delta_chunk({"tool_calls": [call_body(part)]})
                    elif pending is not None and part.id is None and part.index == pending.index:
                        pending.arguments += part.arguments
                    else:
                        if pending is not None:
                            yield delta_chunk({"tool_calls": [call_body(pending)]})
                        pending = ToolCallDelta(part.index, part.id, part.name, part.arguments)
                continue
            finish: Finish = event
            if pending is not None:
                yield delta_chunk({"tool_calls": [call_body(pending)]})
                pending = None
            if finish.truncated:  # an error, or an answer the server cut short: never a normal finish
                failure = finish.error_of(InternalError)
                message = failure.message
                if settings.stream_error_style == "envelope":
                    yield sse_event(error_body(failure, path, settings))
                else:  # OpenRouter's mid-stream error chunk (the OpenAI SDK raises APIError on it)
                    choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "error"}
                    yield sse_event(
                        {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "error": {"code": failure.kind, "message": message},
                            "choices": [{**choice, "logprobs": None}],
                        }
                    )
                break
            yield delta_chunk({}, finish_reason(finish.reason))
            if include_usage or settings.stream_usage_always:
                u = finish.usage
                usage = {
                    "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens,
                    "total_tokens": u.total_tokens,
                }
                if u.cached_tokens:
                    usage["prompt_tokens_details"] = {"cached_tokens": u.cached_tokens}
                extra = {"meta": meta_body(u, settings)} if settings.include_meta else {}
                yield chunk([], usage, **extra)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE
