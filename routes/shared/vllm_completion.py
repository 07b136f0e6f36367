"""vLLM's legacy completion object and stream (``text_completion``), for the routes that are vLLM's OpenAI server.

Each choice is the output's text (its prompt echoed before it), ``logprobs`` in the completions format (``tokens``,
``token_logprobs``, ``top_logprobs`` dicts keyed by token text, ``text_offset``), ``stop_reason``, its prompt's
``prompt_logprobs`` and the era's keys of ``routes/shared/vllm_response.py``'s ``VllmShape``; a batch of prompts with
``n`` choices each answers ``prompts x n`` choices, prompt ``i``'s ``j``-th at index ``i * n + j``, usage counting
each prompt once and every choice's output (vLLM's ``serving_completion``). The stream sends one chunk per delta of
one choice, as the choices' deltas arrive (the echo with a choice's first), each choice keeping its own text offset
and ending with its own finish chunk, which carries the text and logprobs of trailing tokens that have no text (the
``<|return|>`` that ended the turn), as vLLM's last chunk does; after every choice's finish, a ``choices: []`` usage
chunk with ``stream_options.include_usage``, then ``[DONE]``. With harmony-decoded output (a route's setting), a
choice's ``text`` is the answer alone and its reasoning (and any tool calls) ride beside it, as on chat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response

from routes.shared.completion_request import CompletionOptions, CompletionRequest, options_of
from routes.shared.ids import token_text
from routes.shared.run import complete_choices, open_choices
from routes.shared.vllm_response import (
    VllmShape,
    prompt_logprobs_body,
    stream_usage_body,
    tool_call_delta,
    tool_calls_body,
    usage_body,
)
from server.choices import ChoiceResults, IndexedEvent, check_batch, replicate
from server.context import ServerContext
from server.http.jsonio import SSE_DONE, dumps, sse_event
from server.http.sse import sse_response
from server.service import PreparedRequest
from server.types import ChatResult, Delta, Finish, PromptLogprobs, TokenLogprob


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


def choice_body(result: ChatResult, index: int, shape: VllmShape, options: CompletionOptions) -> dict[str, Any]:
    """One choice of the answer (``CompletionResponseChoice``)."""
    prompt_ids = result.prompt_token_ids
    text, token_ids = result.content or "", result.token_ids
    entries: list[TokenLogprob | None] = list(result.logprobs or [])
    echo = options.echo_of(index)
    if echo is not None:
        echoed = prompt_entries(prompt_ids, result.prompt_logprobs)
        if options.echo_only:
            text, token_ids, entries = echo, prompt_ids, echoed
        else:
            text, token_ids, entries = echo + text, [*prompt_ids, *token_ids], [*echoed, *entries]
    logprobs = None
    if options.logprobs is not None:
        logprobs = LogprobsWriter(options.logprobs, options.tokens_as_ids).body(token_ids, entries)
    choice: dict[str, Any] = {"index": index, "text": text}
    if options.reasoning:
        choice["reasoning"] = result.reasoning
        if result.tool_calls:
            choice["tool_calls"] = tool_calls_body(result)
    choice["logprobs"] = logprobs
    choice["finish_reason"] = result.finish_reason
    choice["stop_reason"] = result.stop_reason
    if shape.choice_token_ids or options.return_token_ids:
        choice["token_ids"] = result.token_ids if options.return_token_ids else None
    choice["prompt_logprobs"] = prompt_logprobs_body(result.prompt_logprobs)
    choice["prompt_token_ids"] = prompt_ids if options.return_token_ids else None
    return choice


def completion_body(
    answer: ChoiceResults,
    shape: VllmShape,
    options: CompletionOptions,
    *,
    completion_id: str,
    created: int,
) -> dict[str, Any]:
    """Every choice in index order; usage as vLLM sums it (each prompt once, every choice's output), with the cached
    tokens of the last prompt alone (vLLM reports its ``num_cached_tokens``)."""
    usage = answer.usage
    cached = answer.results[-options.n].usage.cached_tokens  # the last prompt's (its first choice's)
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": shape.model,
        "choices": [choice_body(r, i, shape, options) for i, r in enumerate(answer.results)],
        "service_tier": None,
        "system_fingerprint": shape.system_fingerprint,
        "usage": usage_body(usage.prompt_tokens, usage.completion_tokens, cached, shape),
        "kv_transfer_params": answer.results[0].kv_transfer_params,  # vLLM's: the first prompt's
    }


@dataclass(frozen=True, slots=True)
class CompletionStream:
    """What one streamed request needs besides its events."""

    completion_id: str
    created: int
    prompt_token_ids: list[list[int]]  # per prompt of the batch
    options: CompletionOptions


@dataclass(slots=True)
class ChoiceState:
    """One choice's place in the stream: its text offset, echo, first chunk, held textless tokens, tokens so far."""

    writer: LogprobsWriter
    echo: str | None
    first: bool = True
    held: Delta | None = None
    generated: int = 0


async def encode_completion_stream(
    events: AsyncIterator[IndexedEvent],
    shape: VllmShape,
    request: CompletionStream,
    error_event: Callable[[Finish], dict[str, Any]],
) -> AsyncIterator[bytes]:
    options = request.options
    n = options.n
    prompts = request.prompt_token_ids
    states = [
        ChoiceState(LogprobsWriter(options.logprobs or 0, options.tokens_as_ids), options.echo_of(i))
        for i in range(len(prompts) * n)
    ]
    head = {"id": request.completion_id, "object": "text_completion", "created": request.created, "model": shape.model}
    completion = [0] * len(states)
    cached: int | None = None  # vLLM's: the count of the first output to arrive
    first_index: int | None = None

    def chunk(index: int, delta: Delta, finish: Finish | None = None) -> bytes:
        state = states[index]
        prompt_ids = prompts[index // n]
        text, token_ids = delta.content, delta.token_ids
        entries: list[TokenLogprob | None] = list(delta.logprobs or [])
        if state.echo is not None:
            echoed = prompt_entries(prompt_ids, delta.prompt_logprobs)
            if options.echo_only:
                text, token_ids, entries = state.echo, prompt_ids, echoed
            else:
                text, token_ids, entries = state.echo + text, [*prompt_ids, *token_ids], [*echoed, *entries]
            state.echo = None
        choice: dict[str, Any] = {"index": index, "text": text}
        if delta.reasoning:
            choice["reasoning"] = delta.reasoning
        if delta.tool_calls:
            choice["tool_calls"] = [tool_call_delta(part) for part in delta.tool_calls]
        choice["logprobs"] = state.writer.body(token_ids, entries) if options.logprobs is not None else None
        choice["finish_reason"] = finish.reason if finish is not None else None
        choice["stop_reason"] = finish.stop_reason if finish is not None else None
        choice["prompt_token_ids"] = prompt_ids if options.return_token_ids and state.first else None
        choice["token_ids"] = delta.token_ids if options.return_token_ids else None
        state.first = False
        body: dict[str, Any] = {**head, "choices": [choice]}
        if options.include_usage and options.continuous_usage:
            body["usage"] = stream_usage_body(len(prompt_ids), state.generated)
        return sse_event(body)

    try:
        async for index, event in events:
            state = states[index]
            first_index = index if first_index is None else first_index
            if isinstance(event, Delta):
                state.generated += len(event.token_ids)
                if state.held is not None:
                    event = merge_tokens(state.held, event)
                    state.held = None
                if not (event.content or event.reasoning or event.tool_calls) and state.echo is None:
                    state.held = event
                    continue
                yield chunk(index, event)
                continue
            if event.reason == "error":
                yield sse_event(error_event(event))
                break
            state.generated = completion[index] = event.usage.completion_tokens
            if index == first_index:
                cached = event.usage.cached_tokens
            yield chunk(index, state.held or Delta(), event)
            state.held = None
        else:
            if options.include_usage:
                prompt = sum(len(ids) for ids in prompts)
                usage = stream_usage_body(prompt, sum(completion), cached or 0, shape)
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


async def prepare_all(
    ctx: ServerContext, body: CompletionRequest, request_id: str, harmony_output: bool
) -> list[PreparedRequest]:
    """Every choice of the batch, prompt by prompt (``n`` each, ``server/choices.py``'s ids and seeds), within the
    server's bounds on ``n`` and on the batch's engine requests."""
    requests = body.to_core(request_id, harmony_output=harmony_output)
    check_batch(len(requests), body.choices, ctx.settings.limits)
    choices: list[PreparedRequest] = []
    for core in requests:
        prepared = await ctx.service.prepare_prompt(core, clamp_max_tokens=True)
        choices += replicate(prepared, body.choices)
    return choices


async def respond(
    ctx: ServerContext,
    request: Request,
    body: CompletionRequest,
    shape: VllmShape,
    *,
    completion_id: str,
    created: int,
    stream_error: Callable[[Finish], dict[str, Any]],
    harmony_output: bool = False,
    core_id: str | None = None,
) -> Response:
    """Run a checked completion request (a batch of prompts, ``n`` choices each) and answer it, streamed or not.
    ``harmony_output``: decode the output as a harmony turn (the answer as ``text``, its reasoning beside it).
    ``core_id``: the core requests' id (default: ``completion_id``)."""
    choices = await prepare_all(ctx, body, core_id or completion_id, harmony_output)
    prompt_ids = [prepared.prompt_token_ids for prepared in choices[:: body.choices]]
    options = options_of(body, prompt_ids, reasoning=harmony_output)
    if body.stream:
        events = await open_choices(ctx, choices)
        stream = CompletionStream(completion_id, created, prompt_ids, options)
        return sse_response(encode_completion_stream(events, shape, stream, stream_error))
    answer = await complete_choices(ctx, request, choices)
    payload = completion_body(answer, shape, options, completion_id=completion_id, created=created)
    return Response(dumps(payload), media_type="application/json")
