"""vLLM's chat-completion stream, for the routes that are vLLM's OpenAI server (ours, and vLLM behind a gateway).

A role chunk, reasoning/content/tool-call deltas, a finish chunk with ``stop_reason``, a ``choices: []`` usage chunk
only with ``stream_options.include_usage``, then ``[DONE]``; with ``n`` choices, each chunk carries one of them. An
error after the first byte is one ``data:`` event with the route's error body (``error_event``), then ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from routes.shared.vllm_response import VllmShape, openai_logprobs, stream_usage_body, tool_call_delta
from server.choices import IndexedEvent
from server.http.jsonio import SSE_DONE, dumps, sse_event
from server.types import Delta, Finish


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
    n: int = 1  # choices: a role chunk for each first, then their chunks interleaved as they come
    tokens_as_ids: bool = False  # ``return_tokens_as_token_ids``: logprob tokens as ``token_id:N``


async def encode_stream(
    events: AsyncIterator[IndexedEvent],
    shape: VllmShape,
    request: StreamRequest,
    error_event: Callable[[Finish], dict[str, Any]],
) -> AsyncIterator[bytes]:
    """vLLM's stream of ``request.n`` choices: each chunk carries one choice with its ``index``; each choice has its
    own finish chunk; the usage chunk (the prompt once, every choice's tokens) comes after the last of them."""
    continuous = request.include_usage and request.continuous_usage
    return_token_ids = request.return_token_ids
    prompt = len(request.prompt_token_ids)
    generated = [0] * request.n  # per choice, as vLLM's continuous usage counts them
    completion = [0] * request.n
    head_fields = {
        "id": request.completion_id,
        "object": "chat.completion.chunk",
        "created": request.created,
        "model": shape.model,
    }

    def chunk(index: int, choice: dict[str, Any] | None, **extra: Any) -> bytes:
        body: dict[str, Any] = {**head_fields, "choices": [choice] if choice is not None else []}
        body.update(extra)
        if continuous and choice is not None:
            body["usage"] = stream_usage_body(prompt, generated[index])
        return sse_event(body)

    def choice(index: int, delta: dict[str, Any], logprobs: Any = None, **extra: Any) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None, **extra}

    # The hot path: a text delta without logprobs, token ids or usage. Everything but the text is constant per
    # choice, so it is serialised once (the same bytes as ``chunk(i, choice(i, {key: text}))``).
    head = sse_event(head_fields)
    head = head[: -len(b"}\n\n")] + b',"choices":[{"index":'
    tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'
    heads = [head + str(i).encode() + b',"delta":{' for i in range(request.n)]
    content_heads = [h + b'"content":' for h in heads]
    reasoning_heads = [h + dumps(shape.reasoning_key) + b":" for h in heads]
    plain_text = not return_token_ids and not continuous
    text_json = orjson.dumps  # of a str: the bytes ``dumps`` gives, without its call

    first_extra = {"prompt_token_ids": request.prompt_token_ids} if return_token_ids else {}
    for index in range(request.n):
        yield chunk(index, choice(index, {"role": "assistant", "content": ""}), **first_extra)
    cached = 0
    try:
        async for index, event in events:
            if isinstance(event, Delta):
                if plain_text and event.logprobs is None and not event.tool_calls:  # (no continuous usage either)
                    if event.reasoning:
                        yield reasoning_heads[index] + text_json(event.reasoning) + tail
                    if event.content:
                        yield content_heads[index] + text_json(event.content) + tail
                    continue
                generated[index] += len(event.token_ids)
                logprobs = openai_logprobs(event.logprobs, request.tokens_as_ids)
                ids = {"token_ids": event.token_ids} if return_token_ids else {}
                if event.reasoning:
                    yield chunk(index, choice(index, {shape.reasoning_key: event.reasoning}, logprobs, **ids))
                    logprobs, ids = None, {}
                if event.content:
                    yield chunk(index, choice(index, {"content": event.content}, logprobs, **ids))
                    logprobs, ids = None, {}
                for part in event.tool_calls:
                    yield chunk(index, choice(index, {"tool_calls": [tool_call_delta(part)]}, logprobs, **ids))
                    logprobs, ids = None, {}
                if logprobs is not None or ids:
                    yield chunk(index, choice(index, {}, logprobs, **ids))
                continue
            finish: Finish = event
            if finish.reason == "error":
                yield sse_event(error_event(finish))
                break
            generated[index] = completion[index] = finish.usage.completion_tokens
            if index == 0:
                cached = finish.usage.cached_tokens
            yield chunk(
                index,
                {
                    "index": index,
                    "delta": {},
                    "logprobs": None,
                    "finish_reason": finish.reason,
                    "stop_reason": finish.stop_reason,
                },
            )
        else:
            if request.include_usage:
                usage = stream_usage_body(prompt, sum(completion), cached, shape)
                yield chunk(0, None, usage=usage)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE
