"""Ollama's streams: newline-delimited JSON (``application/x-ndjson``), one object per line.

Each delta of reasoning or text is one object with ``done: false``; the last object has ``done: true``,
``done_reason`` and the metrics, with empty text. As Ollama does for gpt-oss, tool calls come whole, in that last
object. An answer cut short (an engine failure, the deadline, a drain) ends with Ollama's in-stream error line,
``{"error": "..."}``, instead of the last object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from routes.ollama.errors import error_body, go_json
from routes.ollama.response import (
    Reply,
    chat_object,
    done_reason,
    generate_object,
    logprobs_body,
    message,
    metrics,
    tool_calls_body,
)
from server.errors import ServerError
from server.http.streamed import StreamedResponse
from server.service import add_tool_call_parts
from server.types import Delta, Event, Finish, ToolCall

NDJSON = "application/x-ndjson"


def ndjson_response(body: AsyncIterator[bytes]) -> StreamedResponse:
    return StreamedResponse(body, media_type=NDJSON)


def _line(value: dict[str, Any]) -> bytes:
    return go_json(value) + b"\n"


# (the reply, the delta) -> its object; (the reply, the finish, its tool calls) -> the last object
Part = Callable[[Reply, Delta], dict[str, Any]]
Last = Callable[[Reply, Finish, list[dict[str, Any]]], dict[str, Any]]


async def _encode(
    events: AsyncIterator[Event], reply: Reply, part: Part, last: Last, tokens: list[int] | None = None
) -> AsyncIterator[bytes]:
    """The objects of one answer; ``tokens`` collects the answer's token ids."""
    calls: dict[int, ToolCall] = {}
    try:
        async for event in events:
            if isinstance(event, Delta):
                if tokens is not None:
                    tokens.extend(event.token_ids)
                add_tool_call_parts(calls, event.tool_calls)
                if event.reasoning or event.content or (reply.top_logprobs is not None and event.logprobs):
                    yield _line(part(reply, event))
                continue
            if event.truncated:
                yield _line(error_body(event.error_of(ServerError)))
                break
            try:
                tool_calls = tool_calls_body([calls[i] for i in sorted(calls)])
            except ServerError as exc:
                yield _line(error_body(exc))
                break
            yield _line(last(reply, event, tool_calls))
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def chat_stream(events: AsyncIterator[Event], reply: Reply) -> AsyncIterator[bytes]:
    def part(reply: Reply, delta: Delta) -> dict[str, Any]:
        logprobs = logprobs_body(delta.logprobs, reply.top_logprobs)
        return chat_object(reply, message(delta.content, delta.reasoning), logprobs=logprobs)

    def last(reply: Reply, finish: Finish, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
        stats = metrics(reply, finish.usage, finish.timings)
        reason = done_reason(finish.reason)
        return chat_object(reply, message("", "", tool_calls), done=True, reason=reason, stats=stats)

    return _encode(events, reply, part, last)


def generate_stream(events: AsyncIterator[Event], reply: Reply, prompt_ids: list[int] | None) -> AsyncIterator[bytes]:
    """``prompt_ids``: the prompt's tokens, for the last object's ``context`` (None: no context)."""
    answer: list[int] = []

    def part(reply: Reply, delta: Delta) -> dict[str, Any]:
        logprobs = logprobs_body(delta.logprobs, reply.top_logprobs)
        return generate_object(reply, delta.content, delta.reasoning, logprobs=logprobs)

    def last(reply: Reply, finish: Finish, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
        context = None if prompt_ids is None else prompt_ids + answer
        stats = metrics(reply, finish.usage, finish.timings)
        reason = done_reason(finish.reason)
        return generate_object(reply, "", done=True, reason=reason, context=context, stats=stats, tool_calls=tool_calls)

    return _encode(events, reply, part, last, answer)
