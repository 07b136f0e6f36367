"""Oxen's stream chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from routes.oxen.errors import error_body
from routes.oxen.response import sort_keys
from routes.oxen.settings import OxenSettings
from server.errors import (
    ServerError,
)
from server.http.jsonio import SSE_DONE, sse_event
from server.types import Delta, Event, Finish


async def encode_stream(
    events: AsyncIterator[Event],
    settings: OxenSettings,
    *,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any) -> bytes:
        choices = [] if delta is None else [{"delta": delta, "finish_reason": finish_reason, "index": 0}]
        body = {
            "choices": choices,
            "created": created,
            "id": completion_id,
            "model": model,
            "object": "chat.completion.chunk",
            **extra,
        }
        return sse_event(body if settings.sort_keys == "none" else sort_keys(body))

    if settings.stream_role_chunk:
        yield chunk({"content": "", "role": "assistant"})
    try:
        async for event in events:
            if isinstance(event, Delta):
                if event.reasoning and settings.reasoning_field:
                    yield chunk({settings.reasoning_field: event.reasoning})
                if event.content:
                    yield chunk({"content": event.content})
                for part in event.tool_calls:
                    call: dict[str, Any] = {"index": part.index, "function": {"arguments": part.arguments}}
                    if part.id is not None:
                        call.update(id=part.id, type="function")
                        call["function"]["name"] = part.name
                    yield chunk({"tool_calls": [call]})
                continue
            finish: Finish = event
            if finish.truncated:  # an error, or an answer the server cut short: never a normal finish
                yield sse_event(error_body(finish.error_of(ServerError)))
                break
            yield chunk({}, finish.reason)
            if include_usage and settings.stream_usage:
                u = finish.usage
                usage = {
                    "completion_tokens": u.completion_tokens,
                    "prompt_tokens": u.prompt_tokens,
                    "total_tokens": u.total_tokens,
                }
                yield chunk(None, usage=usage)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE
