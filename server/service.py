"""The neutral core: validate a chat request, render it, admit it, run it, stream neutral events,
and fold the stream into a result (so streaming and non-streaming answers cannot drift).

A raw prompt (``PromptRequest``: text or token ids the caller formatted itself) skips the rendering and is decoded
as plain text; limits, admission, aborts and metrics are the same as a chat request's.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from server import requestlog
from server.engine.base import Engine, GenerationRequest
from server.errors import (
    ContextLengthError,
    EngineUnavailableError,
    InternalError,
    InvalidRequestError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
)
from server.faults.inject import ActiveFault
from server.faults.plan import FaultPlan, current_target
from server.generation import Decoder, Generation
from server.harmony.constraints import output_constraint
from server.harmony.decode import HarmonyDecoder
from server.harmony.encoding import STOP_TOKEN_IDS, VOCAB_SIZE
from server.harmony.plain import PlainDecoder
from server.harmony.pool import RenderPool, prompt_chars
from server.harmony.render import HarmonyRenderer
from server.key_limits import KeyLimiter
from server.settings import KeyLimits, LimitsSettings
from server.types import (
    ChatRequest,
    ChatResult,
    Event,
    Finish,
    PromptLogprobs,
    PromptRequest,
    SamplingOptions,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PreparedRequest:
    """A validated request with its prompt, ready to run."""

    request: ChatRequest | PromptRequest
    request_id: str
    prompt_token_ids: list[int]
    max_tokens: int
    generation: GenerationRequest
    admitted: bool = False  # holds one of the service's admission slots
    queued: bool = False  # its prompt tokens count against the prefill backlog (until its first engine step)
    abort_cause: ServerError | None = None  # why the server aborted it (drain, deadline), if it did
    deadline: asyncio.TimerHandle | None = None
    key: str | None = None  # the API key's name (per-key limits)
    fault: ActiveFault | None = None  # an injected fault (testing.faults_enabled)


class ChatService:
    def __init__(
        self,
        engine: Engine,
        renderer: HarmonyRenderer,
        limits: LimitsSettings,
        key_limits: dict[str, KeyLimits] | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.engine = engine
        self.faults = faults  # None unless fault injection is enabled
        self._keys = KeyLimiter(key_limits or {})
        self.renderer = renderer
        self.limits = limits
        self._render = RenderPool(renderer, limits.render_inline_chars)
        self._active = 0
        self._queued_tokens = 0
        self._running: dict[str, PreparedRequest] = {}
        self._stopping = False
        self.loading = False  # the engine is starting: requests get 503 with Retry-After
        self._tasks: set[asyncio.Future[None]] = set()

    @property
    def active_requests(self) -> int:
        return self._active

    def close(self) -> None:
        """Stop the render worker (at shutdown)."""
        self._render.close()

    # ---- before the first byte ---------------------------------------------------------------

    async def prepare(
        self,
        request: ChatRequest,
        *,
        default_max_tokens: int | None = None,
        clamp_max_tokens: bool = False,
        context_window: int | None = None,
    ) -> PreparedRequest:
        """Validate and render; raises typed errors that become a proper HTTP status.

        ``default_max_tokens`` is a route's own output cap for requests that name none (a provider default);
        without it the server-wide ``limits.default_max_tokens`` applies. ``clamp_max_tokens``: a request asking
        for more output than fits (the context, ``limits.max_output_tokens``) gets what fits instead of a 400, as
        some providers' servers do. ``context_window``: a smaller context than the engine's for this request (prompt
        and output together), as a request may ask for one. Everything cheap is checked before the prompt is rendered.
        """
        self._check_counts(request)
        constraint = self._constraint(request)  # schemas: depth and size, before anything walks them
        chars = self._check_chars(request)
        if request.prompt_token_ids is not None:
            prompt = list(request.prompt_token_ids)
            check_token_ids(prompt, param="kv_transfer_params.prompt_token_ids")
        else:
            prompt = await self._render.render(request, chars)
        max_tokens = self._output_budget(
            request.sampling, len(prompt), default_max_tokens, clamp_max_tokens, context_window
        )
        return self._prepared(request, prompt, max_tokens, constraint)

    async def prepare_prompt(
        self, request: PromptRequest, *, default_max_tokens: int | None = None, clamp_max_tokens: bool = False
    ) -> PreparedRequest:
        """Validate and tokenize a raw prompt (no harmony rendering); the same limits and errors as ``prepare``.

        Text is tokenized as the model's tokenizer reads it: special-token text becomes that control token."""
        self._check_stops(request.sampling)
        if isinstance(request.prompt, str):
            limits = self.limits
            chars = len(request.prompt)
            if chars > limits.max_prompt_chars:
                raise InvalidRequestError(
                    f"The prompt holds {chars} characters; the limit is {limits.max_prompt_chars}.", param="prompt"
                )
            check_runs([("prompt", request.prompt)], limits.max_word_chars)
            prompt = await self._render.tokenize(request.prompt)
        else:
            prompt = list(request.prompt)
            check_token_ids(prompt)
        prompt = truncate_prompt(prompt, request, self.engine.info.max_model_len)
        if not prompt:
            raise InvalidRequestError("The prompt is empty.", param="prompt")
        max_tokens = self._output_budget(request.sampling, len(prompt), default_max_tokens, clamp_max_tokens)
        return self._prepared(request, prompt, max_tokens, request.constraint)

    def _prepared(
        self,
        request: ChatRequest | PromptRequest,
        prompt: list[int],
        max_tokens: int,
        constraint: dict[str, object] | None,
    ) -> PreparedRequest:
        request_id = request.request_id or uuid.uuid4().hex
        extra_stops = tuple(i for i in dict.fromkeys(request.sampling.stop_token_ids) if i not in STOP_TOKEN_IDS)
        generation = GenerationRequest(
            request_id=request_id,
            prompt_token_ids=prompt,
            sampling=request.sampling,
            max_tokens=max_tokens,
            stop_token_ids=STOP_TOKEN_IDS + extra_stops,
            constraint=constraint,
        )
        self.engine.validate(generation)
        return PreparedRequest(request, request_id, prompt, max_tokens, generation)

    def _check_counts(self, request: ChatRequest) -> None:
        """Messages, tools and stop strings within their bounds."""
        limits = self.limits
        if not request.messages:
            raise InvalidRequestError("messages must contain at least one message.", param="messages")
        if len(request.messages) > limits.max_messages:
            raise InvalidRequestError(f"At most {limits.max_messages} messages are allowed.", param="messages")
        if len(request.tools) > limits.max_tools:
            raise InvalidRequestError(f"At most {limits.max_tools} tools are allowed.", param="tools")
        self._check_stops(request.sampling)

    def _check_stops(self, sampling: SamplingOptions) -> None:
        limits = self.limits
        stops = sampling.stop
        if len(stops) > limits.max_stop_sequences:
            raise InvalidRequestError(f"At most {limits.max_stop_sequences} stop sequences are allowed.", param="stop")
        if any(len(s) > limits.max_stop_length for s in stops):
            raise InvalidRequestError(
                f"Stop sequences may be at most {limits.max_stop_length} characters long.", param="stop"
            )

    def _check_chars(self, request: ChatRequest) -> int:
        """The prompt's text within ``limits.max_prompt_chars`` and free of over-long words; returns its characters."""
        limits = self.limits
        chars = prompt_chars(request)
        if chars > limits.max_prompt_chars:
            raise InvalidRequestError(
                f"The prompt holds {chars} characters; the limit is {limits.max_prompt_chars}.", param="messages"
            )
        check_text_runs(request, limits.max_word_chars)
        return chars

    def _output_budget(
        self,
        sampling: SamplingOptions,
        prompt_tokens: int,
        default_max_tokens: int | None,
        clamp: bool,
        context_window: int | None = None,
    ) -> int:
        """The output tokens this request may generate: what it asked for, or the default, within the context and
        ``limits.max_output_tokens``."""
        max_context = min(self.engine.info.max_model_len, context_window or self.engine.info.max_model_len)
        if prompt_tokens >= max_context:
            raise ContextLengthError(
                f"This model's maximum context length is {max_context} tokens. However, your request has "
                f"{prompt_tokens} input tokens. Please reduce the length of the input messages.",
                prompt_tokens=prompt_tokens,
                max_context=max_context,
            )
        room = max_context - prompt_tokens
        cap = min(room, self.limits.max_output_tokens or room)
        requested = sampling.max_tokens
        if requested is not None and requested > cap and not clamp:
            if requested <= room:  # within the context, over the server's own cap
                raise InvalidRequestError(
                    f"max_tokens is too large: {requested}. This server allows at most "
                    f"{self.limits.max_output_tokens} output tokens per request.",
                    param="max_tokens",
                )
            raise ContextLengthError(
                f"This model's maximum context length is {max_context} tokens. However, you requested "
                f"{prompt_tokens + requested} tokens ({prompt_tokens} in the messages, {requested} in the "
                "completion). Please reduce the length of the messages or completion.",
                prompt_tokens=prompt_tokens,
                max_context=max_context,
                param="max_tokens",
            )
        default = default_max_tokens or self.limits.default_max_tokens or cap
        max_tokens = min(requested, cap) if requested is not None else min(default, cap)
        if sampling.min_tokens > max_tokens:
            raise InvalidRequestError(
                f"min_tokens ({sampling.min_tokens}) must not exceed max_tokens ({max_tokens}).",
                param="min_tokens",
            )
        return max_tokens

    def _constraint(self, request: ChatRequest) -> dict[str, object] | None:
        schemas = [t.parameters for t in request.tools if t.parameters] + [request.response_format.schema or {}]
        param = "response_format" if request.response_format.schema else "tools"
        if max(map(_depth, schemas)) > MAX_SCHEMA_DEPTH:
            raise InvalidRequestError(f"JSON schemas may nest at most {MAX_SCHEMA_DEPTH} levels deep.", param=param)
        size = sum(len(json.dumps(s, separators=(",", ":"))) for s in schemas)
        if size > self.limits.max_schema_bytes:
            raise InvalidRequestError(
                f"JSON schemas in this request total {size} bytes; the limit is {self.limits.max_schema_bytes}.",
                param="response_format" if request.response_format.schema else "tools",
            )
        return output_constraint(request, self.limits.constrained_reasoning_budget)

    async def admit(self, prepared: PreparedRequest) -> None:
        """Take an admission slot for ``prepared`` or raise (shutting down, engine down, at capacity).

        Capacity is the number of requests in flight and the prompt tokens still waiting for prefill. The check and
        the reservation happen in one step, so concurrent requests cannot all pass the check. The slot is released
        when the request's event stream ends, is closed, or is dropped unstarted.
        """
        limits = self.limits
        if self._stopping:
            raise EngineUnavailableError("The server is shutting down.")
        if self.loading:
            raise EngineUnavailableError(
                "The model is still loading; retry in a few seconds.", retry_after=LOADING_RETRY_S
            )
        await self.engine.check_health()
        if self.faults is not None:
            self._choose_fault(prepared)
        if self._active >= limits.max_concurrent_requests:
            raise RateLimitError(
                f"The server is at capacity ({limits.max_concurrent_requests} requests in flight). "
                "Please retry shortly.",
                retry_after=1,
            )
        tokens = len(prepared.prompt_token_ids)
        backlog = limits.max_queued_prompt_tokens
        if backlog is not None and self._queued_tokens and self._queued_tokens + tokens > backlog:
            raise RateLimitError(
                f"The server is at capacity ({self._queued_tokens} prompt tokens waiting to be processed). "
                "Please retry shortly.",
                retry_after=1,
            )
        record = requestlog.current()
        prepared.key = record.key if record is not None else None
        self._keys.admit(prepared.key, tokens)
        self._active += 1
        self._queued_tokens += tokens
        prepared.admitted = prepared.queued = True
        self._running[prepared.request_id] = prepared
        timeout = limits.request_timeout_s
        if prepared.fault is not None:
            timeout = prepared.fault.deadline(timeout)
        if timeout is not None:
            prepared.deadline = asyncio.get_running_loop().call_later(timeout, self._expire, prepared, timeout)

    def _choose_fault(self, prepared: PreparedRequest) -> None:
        """The plan's fault for this request (logged and recorded); one answering before the first byte is raised."""
        target = current_target()
        if self.faults is None or target is None:
            return
        chosen = self.faults.choose(target)
        if chosen is None:
            return
        fault = ActiveFault(chosen, prepared.request_id, f"{target.api} {target.path}")
        if (record := requestlog.current()) is not None:
            record.fault = fault.kind
        refusal = fault.refusal()
        if refusal is not None:
            raise refusal
        prepared.fault = fault

    def release(self, prepared: PreparedRequest) -> None:
        """Free ``prepared``'s admission slot before it runs (a request admitted with others that were refused)."""
        self._release(prepared)

    def _dequeue(self, prepared: PreparedRequest) -> None:
        if prepared.queued:
            prepared.queued = False
            self._queued_tokens -= len(prepared.prompt_token_ids)

    def _release(self, prepared: PreparedRequest) -> None:
        if prepared.admitted:
            prepared.admitted = False
            self._dequeue(prepared)
            self._active -= 1
            self._keys.release(prepared.key)
            self._running.pop(prepared.request_id, None)
            if prepared.deadline is not None:
                prepared.deadline.cancel()

    def _expire(self, prepared: PreparedRequest, timeout: float) -> None:
        log.warning("request %s ran past its deadline (%ss) and is aborted", prepared.request_id, timeout)
        cause = RequestTimeoutError(f"The request took longer than {timeout:g} seconds and was stopped.")
        task = asyncio.ensure_future(self._abort(prepared, cause))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _abort(self, prepared: PreparedRequest, cause: ServerError) -> None:
        """Abort a running request on the server's own initiative; its answer ends as truncated by ``cause``."""
        if prepared.admitted and prepared.abort_cause is None:
            prepared.abort_cause = cause
            if prepared.fault is not None:
                prepared.fault.interrupt()
            await self.engine.abort(prepared.request_id)

    def begin_shutdown(self) -> None:
        """New requests get 503 from now on; running ones continue."""
        self._stopping = True

    async def abort_all(self) -> int:
        """Abort every running request (the drain timed out): each answer ends as truncated."""
        running = list(self._running.values())
        for prepared in running:
            await self._abort(prepared, EngineUnavailableError("The server shut down before the answer was complete."))
        return len(running)

    # ---- the run ------------------------------------------------------------------------------

    def stream(self, prepared: PreparedRequest) -> AsyncIterator[Event]:
        """Neutral events: ``Delta``s then exactly one ``Finish``. Call ``admit`` first.

        Closing this iterator early (client disconnect, cancellation) aborts the engine request.
        """
        return self._open(prepared, None)

    def stream_indexed(self, prepared: PreparedRequest, index: int) -> AsyncIterator[tuple[int, Event]]:
        """``stream`` as ``(index, event)`` pairs: choice ``index`` of a request's choices (``server/choices.py``),
        paired here rather than by a relay that would cost a hop per event."""
        return self._open(prepared, index)

    def _open(self, prepared: PreparedRequest, index: int | None) -> AsyncIterator[Any]:
        events = self._run(prepared, index)
        weakref.finalize(events, self._release, prepared)  # a stream dropped before it started frees its slot
        return events

    async def _run(self, prepared: PreparedRequest, index: int | None) -> AsyncIterator[Any]:
        """``Event``s, or ``(index, event)`` pairs when ``index`` is given."""
        try:
            sampling = prepared.request.sampling
            run = Generation(
                prompt_tokens=len(prepared.prompt_token_ids),
                stop=sampling.stop,
                include_stop=sampling.include_stop_str_in_output,
                min_tokens=sampling.min_tokens,
                keep_reasoning=getattr(prepared.request, "include_reasoning", True),
                top_logprobs=sampling.top_logprobs,
                stream_interval=max(self.limits.stream_interval, sampling.stream_interval or 0),
                decoder=decoder_for(prepared.request),
            )
            fault = prepared.fault
            engine_steps = self.engine.generate(prepared.generation)
            if fault is not None:
                engine_steps = fault.pace(engine_steps)
            try:
                if fault is None:
                    async for step in engine_steps:
                        if prepared.queued:
                            self._dequeue(prepared)  # prefill is done once the engine answers
                        delta = run.take(step)
                        if delta is not None:
                            yield delta if index is None else (index, delta)
                        if run.done:
                            break  # closing the engine stream below aborts the request
                else:
                    async for step in engine_steps:
                        if fault.strikes_now():
                            break  # an injected fault before the first delta
                        self._dequeue(prepared)
                        delta = run.take(step)
                        if delta is not None:
                            yield delta if index is None else (index, delta)
                            if fault.count_delta():
                                break
                        if run.done:
                            break
            except (EngineUnavailableError, InvalidRequestError) as exc:
                run.fail(exc.message, exc)
            except Exception as exc:
                log.exception("engine failed during request %s", prepared.request_id)
                message = f"Internal error during generation ({exc.__class__.__name__})."
                run.fail(message, InternalError(message))
            finally:
                await engine_steps.aclose()  # type: ignore[attr-defined]
            if fault is not None and fault.fault.strikes_in_stream and run.failure is None and run.reason != "abort":
                error = fault.strike()  # a cut raises here
                run.fail(error.message, error)
            elif (tail := run.tail()) is not None:
                yield tail if index is None else (index, tail)
            finish = run.finish(prepared.abort_cause)
            self._keys.spend(prepared.key, finish.usage.completion_tokens)
            if (record := requestlog.current()) is not None:
                record.finished(finish)
            yield finish if index is None else (index, finish)
        finally:
            self._release(prepared)

    async def complete(self, prepared: PreparedRequest) -> ChatResult:
        """Run to the end and fold the stream. Call ``admit`` first."""
        return await fold(self.stream(prepared), prepared.prompt_token_ids)


async def fold(events: AsyncIterator[Event], prompt_token_ids: list[int]) -> ChatResult:
    """The non-streaming result is exactly the fold of the stream."""
    reasoning: list[str] = []
    content: list[str] = []
    calls: dict[int, ToolCall] = {}
    token_ids: list[int] = []
    logprobs: list[TokenLogprob] | None = None
    prompt_logprobs: PromptLogprobs | None = None
    finish: Finish | None = None
    try:
        async for event in events:
            if isinstance(event, Finish):
                finish = event
                break
            reasoning.append(event.reasoning)
            content.append(event.content)
            token_ids.extend(event.token_ids)
            if event.logprobs is not None:
                logprobs = (logprobs or []) + event.logprobs
            if prompt_logprobs is None:
                prompt_logprobs = event.prompt_logprobs
            add_tool_call_parts(calls, event.tool_calls)
    finally:
        await events.aclose()  # type: ignore[attr-defined]  # releases the admission slot at once
    if finish is None:
        raise InternalError("The generation ended without a result.")
    if finish.truncated:
        if isinstance(finish.exception, ServerError):
            raise finish.exception
        if finish.reason == "abort":
            raise EngineUnavailableError("The request was aborted before the answer was complete.")
        raise InternalError(finish.error or "Generation failed.")
    text = "".join(content)
    thought = "".join(reasoning)
    return ChatResult(
        content=text if text or not calls else None,
        reasoning=thought or None,
        tool_calls=[calls[i] for i in sorted(calls)],
        finish_reason=finish.reason,
        usage=finish.usage,
        timings=finish.timings,
        stop_reason=finish.stop_reason,
        token_ids=token_ids,
        logprobs=logprobs,
        prompt_token_ids=prompt_token_ids,
        prompt_logprobs=prompt_logprobs,
        kv_transfer_params=finish.kv_transfer_params,
    )


def decoder_for(request: ChatRequest | PromptRequest) -> Decoder:
    """A chat turn (or a raw prompt that asks for it) is decoded as harmony; any other raw prompt as plain text."""
    if isinstance(request, PromptRequest):
        if request.harmony_output:
            return HarmonyDecoder()
        return PlainDecoder(skip_special_tokens=request.sampling.skip_special_tokens)
    return HarmonyDecoder(namespaces=frozenset(t.namespace for t in request.tools if t.namespace))


def truncate_prompt(prompt: list[int], request: PromptRequest, max_model_len: int) -> list[int]:
    """vLLM's ``truncate_prompt_tokens`` (its ``TokenizeParams``): at most the context, -1 for the context less one
    token (room for the output), then the prompt's last (``left``) or first (``right``) tokens."""
    keep = request.truncate_prompt_tokens
    if keep is None:
        return prompt
    if keep > max_model_len:
        raise InvalidRequestError(
            f"truncate_prompt_tokens={keep} cannot be greater than max_model_len = {max_model_len}. "
            "Please request a smaller truncation size.",
            param="truncate_prompt_tokens",
        )
    if keep < 0:
        keep = max(0, max_model_len - 1)
    if keep >= len(prompt):
        return prompt
    if keep == 0:
        return []
    return prompt[-keep:] if request.truncation_side == "left" else prompt[:keep]


def check_token_ids(token_ids: list[int], param: str = "prompt") -> None:
    """Every id within the vocabulary (vLLM's message)."""
    if token_ids and (min(token_ids) < 0 or max(token_ids) >= VOCAB_SIZE):
        bad = min(token_ids) if min(token_ids) < 0 else max(token_ids)
        raise InvalidRequestError(f"Token id {bad} is out of vocabulary", param=param)


def add_tool_call_parts(calls: dict[int, ToolCall], parts: list[ToolCallDelta]) -> None:
    """Fold streamed tool-call parts into whole calls, keyed by index (for formats that send whole calls)."""
    for part in parts:
        call = calls.get(part.index)
        if call is None:
            calls[part.index] = ToolCall(part.id or "", part.name or "", part.arguments, part.namespace)
        else:
            call.arguments += part.arguments


LOADING_RETRY_S = 5  # Retry-After while the engine loads
MAX_SCHEMA_DEPTH = 64  # as vLLM bounds structured-output schemas


def _depth(value: object) -> int:
    """Nesting depth of a JSON value, without recursion (a hostile schema may be 1000 levels deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def check_text_runs(request: ChatRequest, limit: int) -> None:
    """Refuse runs of letters/digits longer than ``limit`` characters anywhere in the prompt text.

    Byte-pair encoding is quadratic in the length of one such run: 100k identical letters take seconds of CPU
    (and a million crash the tokenizer), blocking every other request. Real text breaks words far sooner.
    """
    texts: list[tuple[str, str]] = []
    for i, m in enumerate(request.messages):
        texts += [(f"messages.{i}.content", m.content or ""), (f"messages.{i}.reasoning", m.reasoning or "")]
        texts += [(f"messages.{i}.tool_calls", f"{c.namespace} {c.name} {c.arguments}") for c in m.tool_calls]
    tool_texts = [[t.name, t.description, t.parameters, t.namespace, t.namespace_description] for t in request.tools]
    texts += [("tools", json.dumps(tool_texts, ensure_ascii=False))] if tool_texts else []
    check_runs(texts, limit)


def check_runs(texts: list[tuple[str, str]], limit: int) -> None:
    """``check_text_runs`` over (param, text) pairs."""
    pattern = _run_pattern(limit)
    for param, text in texts:
        if len(text) > limit and pattern.search(text):
            raise InvalidRequestError(
                f"{param} contains a run of more than {limit} letters or digits without a break; "
                "such text cannot be tokenized efficiently.",
                param=param,
            )


@functools.cache
def _run_pattern(limit: int) -> re.Pattern[str]:
    return re.compile(rf"[^\W_]{{{limit + 1},}}")
