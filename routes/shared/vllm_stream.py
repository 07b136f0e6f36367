"""vLLM's chat-completion stream, for the routes that are vLLM's OpenAI server (ours, and vLLM behind a gateway).

A role chunk, reasoning/content/tool-call deltas, a finish chunk with ``stop_reason``, a ``choices: []`` usage chunk
only with ``stream_options.include_usage``, then ``[DONE]``. An error after the first byte is one ``data:`` event
with the route's error body (``error_event``), then ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from routes.shared.vllm_response import VllmShape, openai_logprobs, stream_usage_body, tool_call_delta
from server.http.jsonio import SSE_DONE, dumps, sse_event
from server.types import Delta, Event, Finish


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What one request asks of its stream."""

    completion_id: str
    created: int
    include_usage: bool
    return_token_ids: bool
    prompt_token_ids: list[int]
    # ``stream_options.continuous_usage_stats``: every chunk carries the usage so far (with include_usage).
    continuous_usage: bool = False


async def encode_stream(
    events: AsyncIterator[Event],
    shape: VllmShape,
    request: StreamRequest,
    error_event: Callable[[Finish], dict[str, Any]],
) -> AsyncIterator[bytes]:
    continuous = request.include_usage and request.continuous_usage
    return_token_ids = request.return_token_ids
    prompt = len(request.prompt_token_ids)
    generated = 0
    head_fields = {
        "id": request.completion_id,
        "object": "chat.completion.chunk",
        "created": request.created,
        "model": shape.model,
    }

    def chunk(choice: dict[str, Any] | None, **extra: Any) -> bytes:
        body: dict[str, Any] = {**head_fields, "choices": [choice] if choice is not None else []}
        body.update(extra)
        if continuous and choice is not None:
            body["usage"] = stream_usage_body(prompt, generated)
        return sse_event(body)

    def choice(delta: dict[str, Any], logprobs: Any = None, **extra: Any) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": None, **extra}

    # The hot path: a text delta without logprobs, token ids or usage. Everything but the text is constant per
    # stream, so it is serialised once (the same bytes as ``chunk(choice({key: text}))``).
    head = sse_event(head_fields)
    head = head[: -len(b"}\n\n")] + b',"choices":[{"index":0,"delta":{'
    tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'
    content_head, reasoning_head = head + b'"content":', head + dumps(shape.reasoning_key) + b":"
    plain_text = not return_token_ids and not continuous

    first_extra = {"prompt_token_ids": request.prompt_token_ids} if return_token_ids else {}
    yield chunk(choice({"role": "assistant", "content": ""}), **first_extra)
    try:
        async for event in events:
            if isinstance(event, Delta):
                generated += len(event.token_ids)
                if plain_text and event.logprobs is None and not event.tool_calls:
                    if event.reasoning:
                        yield reasoning_head + dumps(event.reasoning) + tail
                    if event.content:
                        yield content_head + dumps(event.content) + tail
                    continue
                logprobs = openai_logprobs(event.logprobs)
                ids = {"token_ids": event.token_ids} if return_token_ids else {}
                if event.reasoning:
                    yield chunk(choice({shape.reasoning_key: event.reasoning}, logprobs, **ids))
                    logprobs, ids = None, {}
                if event.content:
                    yield chunk(choice({"content": event.content}, logprobs, **ids))
                    logprobs, ids = None, {}
                for part in event.tool_calls:
                    yield chunk(choice({"tool_calls": [tool_call_delta(part)]}, logprobs, **ids))
                    logprobs, ids = None, {}
                if logprobs is not None or ids:
                    yield chunk(choice({}, logprobs, **ids))
                continue
            finish: Finish = event
            if finish.reason == "error":
                yield sse_event(error_event(finish))
                break
            generated = finish.usage.completion_tokens
            yield chunk(
                {
                    "index": 0,
                    "delta": {},
                    "logprobs": None,
                    "finish_reason": finish.reason,
                    "stop_reason": finish.stop_reason,
                }
            )
            if request.include_usage:
                u = finish.usage
                yield chunk(None, usage=stream_usage_body(u.prompt_tokens, u.completion_tokens, u.cached_tokens, shape))
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE
