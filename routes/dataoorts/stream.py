"""Classic Workers AI events: ``data: {"response": ...}`` per delta, usage, then ``data: [DONE]``."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

from routes.dataoorts.errors import error_body
from routes.dataoorts.response import tool_calls_body
from routes.dataoorts.settings import DataoortsSettings
from routes.shared.ids import random_alnum
from server.errors import (
    EngineUnavailableError,
)
from server.http.jsonio import SSE_DONE, sse_event
from server.service import add_tool_call_parts
from server.types import (
    Delta,
    Event,
    Finish,
    ToolCall,
)


async def encode_stream(events: AsyncIterator[Event], settings: DataoortsSettings) -> AsyncIterator[bytes]:
    """Classic Workers AI stream: text events, whole tool calls, a usage event, ``[DONE]``."""

    def event(body: dict[str, Any]) -> bytes:
        if settings.stream_padding:
            body["p"] = random_alnum(1 + secrets.randbelow(32))
        return sse_event(body)

    calls: dict[int, ToolCall] = {}
    try:
        async for item in events:
            if isinstance(item, Delta):
                if item.reasoning and settings.include_reasoning:
                    yield event({"response": "", "reasoning": item.reasoning})
                if item.content:
                    yield event({"response": item.content})
                add_tool_call_parts(calls, item.tool_calls)
                continue
            finish: Finish = item
            if finish.truncated:  # an error, or an answer the server cut short: never a normal finish
                yield sse_event(error_body(finish.error_of(EngineUnavailableError), settings))
                break
            if calls:
                yield event({"response": "", "tool_calls": tool_calls_body([calls[i] for i in sorted(calls)])})
            u = finish.usage
            usage = {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens,
            }
            yield event({"response": "", "usage": usage})
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE
