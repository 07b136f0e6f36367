"""vLLM's legacy completion object and stream (``text_completion``), for the routes that are vLLM's OpenAI server.

The answer is the output's text (an echoed prompt before it), ``logprobs`` in the completions format (``tokens``,
``token_logprobs``, ``top_logprobs`` dicts keyed by token text, ``text_offset``), ``stop_reason``, the prompt's
``prompt_logprobs`` and the era's keys of ``routes/shared/vllm_response.py``'s ``VllmShape``. The stream sends one chunk
per delta (the echo with the first) and ends with the finish chunk, which carries the text and logprobs of trailing
tokens that have no text (the ``<|return|>`` that ended the turn), as vLLM's last chunk does; then a ``choices: []``
usage chunk with ``stream_options.include_usage``, then ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response

from routes.shared.completion_request import CompletionOptions, CompletionRequest, options_of
from routes.shared.ids import token_text
from routes.shared.run import complete, open_stream
from routes.shared.vllm_response import VllmShape, prompt_logprobs_body, stream_usage_body, usage_body
from server.context import ServerContext
from server.http.jsonio import SSE_DONE, dumps, sse_event
from server.http.sse import sse_response
from server.types import ChatResult, Delta, Event, Finish, PromptLogprobs, TokenLogprob


@dataclass(slots=True)
class LogprobsWriter:
    """Builds ``logprobs`` objects, keeping the text offset across the chunks of one stream."""

    top: int  # the request's ``logprobs``: the chosen token plus this many alternatives
    tokens_as_ids: bool = False
    offset: int = 0
    _last: int = field(default=0)

    def text(self, token_id: int) -> str:
        return f"token_id:{token_id}" if self.tokens_as_ids else token_text(token_id)

    def body(self, token_ids: list[int], entries: list[TokenLogprob | None]) -> dict[str, Any]:
        """vLLM's ``_create_completion_logprobs``: an entry of None (the first prompt token) has no logprob."""
        offsets: list[int] = []
        logprobs: list[float | None] = []
        tokens: list[str] = []
        tops: list[dict[str, float] | None] = []
        for token_id, entry in zip(token_ids, entries, strict=True):
            token = self.text(token_id)
            tokens.append(token)
            if entry is None:
                logprobs.append(None)
                tops.append(None)
            else:
                logprobs.append(max(entry.logprob, -9999.0))
                ranked = [(token_id, entry.logprob), *((t, lp) for t, lp in entry.top if t != token_id)]
                tops.append({self.text(t): max(lp, -9999.0) for t, lp in ranked[: self.top + 1]})
            offsets.append(self.offset if not offsets else offsets[-1] + self._last)
            self._last = len(token)
        if offsets:
            self.offset = offsets[-1] + self._last
            self._last = 0
        return {"text_offset": offsets, "token_logprobs": logprobs, "tokens": tokens, "top_logprobs": tops}


def prompt_entries(prompt_token_ids: list[int], prompt_logprobs: PromptLogprobs | None) -> list[TokenLogprob | None]:
    """The prompt's logprobs as output-token entries (for an echo): the prompt token first, then the alternatives."""
    entries: list[TokenLogprob | None] = []
    positions = prompt_logprobs or [None] * len(prompt_token_ids)
    for token_id, position in zip(prompt_token_ids, positions, strict=False):
        if position is None:
            entries.append(None)
            continue
        chosen = next((e.logprob for e in position if e.token_id == token_id), float("-inf"))
        entries.append(TokenLogprob(token_id, chosen, [(e.token_id, e.logprob) for e in position]))
    return entries


def completion_body(
    result: ChatResult,
    shape: VllmShape,
    options: CompletionOptions,
    *,
    completion_id: str,
    created: int,
) -> dict[str, Any]:
    prompt_ids = result.prompt_token_ids
    text, token_ids = result.content or "", result.token_ids
    entries: list[TokenLogprob | None] = list(result.logprobs or [])
    if options.echo is not None:
        echoed = prompt_entries(prompt_ids, result.prompt_logprobs)
        if options.echo_only:
            text, token_ids, entries = options.echo, prompt_ids, echoed
        else:
            text, token_ids, entries = options.echo + text, [*prompt_ids, *token_ids], [*echoed, *entries]
    logprobs = None
    if options.logprobs is not None:
        logprobs = LogprobsWriter(options.logprobs, options.tokens_as_ids).body(token_ids, entries)
    choice: dict[str, Any] = {
        "index": 0,
        "text": text,
        "logprobs": logprobs,
        "finish_reason": result.finish_reason,
        "stop_reason": result.stop_reason,
    }
    if shape.choice_token_ids or options.return_token_ids:
        choice["token_ids"] = result.token_ids if options.return_token_ids else None
    choice["prompt_logprobs"] = prompt_logprobs_body(result.prompt_logprobs)
    choice["prompt_token_ids"] = prompt_ids if options.return_token_ids else None
    usage = result.usage
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": shape.model,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": shape.system_fingerprint,
        "usage": usage_body(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, shape),
        "kv_transfer_params": None,
    }


@dataclass(frozen=True, slots=True)
class CompletionStream:
    """What one streamed request needs besides its events."""

    completion_id: str
    created: int
    prompt_token_ids: list[int]
    options: CompletionOptions


async def encode_completion_stream(
    events: AsyncIterator[Event],
    shape: VllmShape,
    request: CompletionStream,
    error_event: Callable[[Finish], dict[str, Any]],
) -> AsyncIterator[bytes]:
    options = request.options
    prompt_ids = request.prompt_token_ids
    writer = LogprobsWriter(options.logprobs or 0, options.tokens_as_ids)
    head = {"id": request.completion_id, "object": "text_completion", "created": request.created, "model": shape.model}
    generated = 0
    echo = options.echo
    first = True
    held: Delta | None = None  # trailing tokens without text, sent with the finish chunk

    def chunk(delta: Delta, finish: Finish | None = None) -> bytes:
        nonlocal echo, first
        text, token_ids = delta.content, delta.token_ids
        entries: list[TokenLogprob | None] = list(delta.logprobs or [])
        if echo is not None:
            echoed = prompt_entries(prompt_ids, delta.prompt_logprobs)
            if options.echo_only:
                text, token_ids, entries = echo, prompt_ids, echoed
            else:
                text, token_ids, entries = echo + text, [*prompt_ids, *token_ids], [*echoed, *entries]
            echo = None
        choice: dict[str, Any] = {
            "index": 0,
            "text": text,
            "logprobs": writer.body(token_ids, entries) if options.logprobs is not None else None,
            "finish_reason": finish.reason if finish is not None else None,
            "stop_reason": finish.stop_reason if finish is not None else None,
            "prompt_token_ids": prompt_ids if options.return_token_ids and first else None,
            "token_ids": delta.token_ids if options.return_token_ids else None,
        }
        first = False
        body: dict[str, Any] = {**head, "choices": [choice]}
        if options.include_usage and options.continuous_usage:
            body["usage"] = stream_usage_body(len(prompt_ids), generated)
        return sse_event(body)

    try:
        async for event in events:
            if isinstance(event, Delta):
                generated += len(event.token_ids)
                if held is not None:
                    event = merge_tokens(held, event)
                    held = None
                if not event.content and echo is None:
                    held = event
                    continue
                yield chunk(event)
                continue
            if event.reason == "error":
                yield sse_event(error_event(event))
                break
            generated = event.usage.completion_tokens
            yield chunk(held or Delta(), event)
            if options.include_usage:
                u = event.usage
                usage = stream_usage_body(u.prompt_tokens, u.completion_tokens, u.cached_tokens, shape)
                final: dict[str, Any] = {**head, "choices": [], "usage": usage}
                if shape.system_fingerprint is not None:
                    final["system_fingerprint"] = shape.system_fingerprint
                yield sse_event(final)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE


def merge_tokens(first: Delta, second: Delta) -> Delta:
    """``second`` after the textless tokens of ``first``."""
    second.token_ids = first.token_ids + second.token_ids
    if first.logprobs is not None or second.logprobs is not None:
        second.logprobs = (first.logprobs or []) + (second.logprobs or [])
    if second.prompt_logprobs is None:
        second.prompt_logprobs = first.prompt_logprobs
    return second


async def respond(
    ctx: ServerContext,
    request: Request,
    body: CompletionRequest,
    shape: VllmShape,
    *,
    completion_id: str,
    created: int,
    stream_error: Callable[[Finish], dict[str, Any]],
) -> Response:
    """Run a checked completion request and answer it, streamed or not."""
    prepared = await ctx.service.prepare_prompt(body.to_core(completion_id), clamp_max_tokens=True)
    options = options_of(body, prepared.prompt_token_ids)
    if body.stream:
        events = await open_stream(ctx, prepared)
        stream = CompletionStream(completion_id, created, prepared.prompt_token_ids, options)
        return sse_response(encode_completion_stream(events, shape, stream, stream_error))
    result = await complete(ctx, request, prepared)
    payload = completion_body(result, shape, options, completion_id=completion_id, created=created)
    return Response(dumps(payload), media_type="application/json")
