"""One generation's progress, step by step: engine tokens are decoded (harmony, or plain text for a raw prompt), the
answer text is matched against stop strings (none ends before ``min_tokens`` tokens are out, as in vLLM), decoded
deltas are batched by the stream interval, and the run ends in exactly one ``Finish``.

``ChatService`` drives it (``server/service.py``): ``take`` for each engine step, ``fail`` if the engine raises,
then ``tail`` and ``finish`` once the engine stream is closed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from server.engine.base import EngineStep
from server.errors import ServerError
from server.harmony.decode import HarmonyDecoder
from server.stops import StopMatcher
from server.types import Delta, Finish, FinishReason, Timings, TokenLogprob, ToolCallDelta, Usage


class Decoder(Protocol):
    """Token ids to neutral deltas: the harmony decoder (a chat turn) or the plain one (a raw prompt's text)."""

    @property
    def has_tool_calls(self) -> bool: ...

    @property
    def reasoning_tokens(self) -> int: ...

    def feed(self, token_ids: Sequence[int]) -> Delta: ...

    def finish(self) -> Delta: ...


class Generation:
    """The state of one run from the first engine step to its ``Finish``."""

    def __init__(
        self,
        *,
        prompt_tokens: int,
        stop: list[str],
        top_logprobs: int,
        include_stop: bool = False,
        min_tokens: int = 0,
        keep_reasoning: bool = True,
        stream_interval: int,
        namespaces: frozenset[str] = frozenset(),
        decoder: Decoder | None = None,
    ) -> None:
        self.decoder: Decoder = decoder if decoder is not None else HarmonyDecoder(namespaces=namespaces)
        self.stops = StopMatcher(stop, include=include_stop)
        self.min_tokens = min_tokens
        self._protected = 0  # characters of the last delta's content written by the first ``min_tokens`` tokens
        self.keep_reasoning = keep_reasoning
        self.timings = Timings(start=time.time())
        self.prompt_tokens = prompt_tokens
        self.top_logprobs = top_logprobs
        self.interval = stream_interval
        self.completion_tokens = 0
        self.cached_tokens = 0
        self.reason: FinishReason = "stop"
        self.stop_reason: int | str | None = None
        self.kv_transfer_params: dict[str, Any] | None = None
        self.stopped_by_text = False
        self.done = False  # no more engine steps are wanted (finished, or a stop string was hit)
        self.error: str | None = None
        self.failure: Exception | None = None
        self._pending: Delta | None = None
        self._steps = 0  # engine steps in ``_pending``
        self._sent_any = False
        # no stop strings, reasoning kept: a step of one token (or of any number past ``min_tokens``, which only
        # protects text from stop strings) is just decoded (``take``)
        self._plain = not self.stops and keep_reasoning

    # ---- per engine step -----------------------------------------------------------------------

    def take(self, step: EngineStep) -> Delta | None:
        """Account for one engine step; returns a delta when one is due to be sent."""
        ids = step.token_ids
        if (
            self._plain
            and ids
            and (len(ids) == 1 or self.completion_tokens >= self.min_tokens)
            and step.logprobs is None
            and step.prompt_logprobs is None
            and step.cached_tokens is None
            and step.kv_transfer_params is None
            and self.timings.first_token is not None
        ):  # the common step: what ``decode`` and ``match_stops`` would do
            self.completion_tokens += len(ids)
            delta = self.decoder.feed(ids)
            delta.token_ids = ids
            if self._pending is None and self.interval == 1 and step.finish_reason is None:  # what ``batch`` does
                # (with nothing pending, no steps are counted)
                if delta.content or delta.reasoning or delta.tool_calls:
                    self._sent_any = True
                    return delta
                self._pending, self._steps = delta, 1
                return None
        else:
            delta = self.decode(step)
            self.match_stops(delta)
        self._pending = delta if self._pending is None else merge(self._pending, delta)
        self._steps += 1
        if self.stopped_by_text:
            self.done = True  # the caller closes the engine stream, which aborts the request
        elif step.finish_reason is not None:
            self.reason = (
                "length" if step.finish_reason == "length" else ("abort" if step.finish_reason == "abort" else "stop")
            )
            self.stop_reason = step.stop_reason
            self.done = True
        return None if self.done else self.batch()

    def decode(self, step: EngineStep) -> Delta:
        """Token ids to a neutral delta (reasoning, content, tool-call parts), with timing and logprobs."""
        if step.cached_tokens is not None:
            self.cached_tokens = step.cached_tokens
        if step.kv_transfer_params is not None:
            self.kv_transfer_params = step.kv_transfer_params
        ids = step.token_ids
        # the step's tokens among the first ``min_tokens``: their text cannot end a stop string
        early = min(len(ids), max(0, self.min_tokens - self.completion_tokens))
        if ids:
            if self.timings.first_token is None:
                self.timings.first_token = time.time()
            self.completion_tokens += len(ids)
        if 0 < early < len(ids):
            delta = self.decoder.feed(ids[:early])
            self._protected = len(delta.content)
            delta = merge(delta, self.decoder.feed(ids[early:]))
        else:
            delta = self.decoder.feed(ids)
            self._protected = len(delta.content) if early else 0
        if not self.keep_reasoning:
            delta.reasoning = ""
        delta.token_ids = step.token_ids
        if step.logprobs is not None:
            delta.logprobs = trim_logprobs(step.logprobs, self.top_logprobs)
        delta.prompt_logprobs = step.prompt_logprobs
        return delta

    def match_stops(self, delta: Delta) -> None:
        """Hold back text that may start a stop string; cut the answer at the first one found."""
        if self.stops and delta.content:
            delta.content, hit = self.stops.feed(delta.content, self._protected)
            if hit is not None:
                self.stopped_by_text, self.stop_reason = True, hit

    def batch(self) -> Delta | None:
        """The pending delta, if it is due: the first text at once, later text every ``interval`` engine steps."""
        pending = self._pending
        if (
            pending is None
            or not (pending.content or pending.reasoning or pending.tool_calls)
            or (self._sent_any and self._steps < self.interval)
        ):
            return None
        self._pending, self._steps, self._sent_any = None, 0, True
        return pending

    def fail(self, message: str, failure: Exception) -> None:
        """The engine raised: the run ends with ``reason == "error"`` (``failure`` is the typed error)."""
        self.reason, self.error, self.failure = "error", message, failure

    # ---- after the engine stream is closed -----------------------------------------------------

    def tail(self) -> Delta | None:
        """What is left to send: the pending delta plus the decoder's and stop matcher's held-back text."""
        tail = self.decoder.finish()
        if not self.keep_reasoning:
            tail.reasoning = ""
        if self.stopped_by_text:
            tail.content = ""
        elif self.stops:
            early = len(tail.content) if self.completion_tokens <= self.min_tokens else 0
            tail.content, hit = self.stops.feed(tail.content, early)
            if hit is not None:
                self.reason, self.stop_reason = "stop", hit
            else:
                tail.content += self.stops.flush()
        pending = tail if self._pending is None else merge(self._pending, tail)
        self._pending = None
        return pending if visible(pending) or pending.token_ids or pending.prompt_logprobs else None

    def finish(self, abort_cause: ServerError | None = None) -> Finish:
        """The last event: the finish reason (``tool_calls`` when the answer called tools), usage and timings.

        An answer the server aborted (``abort_cause``: drain, deadline) finishes as ``abort`` with that error."""
        if self.reason == "stop" and self.decoder.has_tool_calls:
            self.reason = "tool_calls"
        if self.reason == "abort" and abort_cause is not None and self.failure is None:
            self.error, self.failure = abort_cause.message, abort_cause
        self.timings.end = time.time()
        usage = Usage(self.prompt_tokens, self.completion_tokens, self.decoder.reasoning_tokens, self.cached_tokens)
        return Finish(
            reason=self.reason,
            usage=usage,
            timings=self.timings,
            stop_reason=self.stop_reason,
            error=self.error,
            kv_transfer_params=self.kv_transfer_params,
            exception=self.failure,
        )


def visible(delta: Delta) -> bool:
    return bool(delta.reasoning or delta.content or delta.tool_calls)


def merge(first: Delta, second: Delta) -> Delta:
    """``second`` appended to ``first`` (a streamed tool call's argument parts joined)."""
    first.reasoning += second.reasoning
    first.content += second.content
    for part in second.tool_calls:
        last: ToolCallDelta | None = first.tool_calls[-1] if first.tool_calls else None
        if last is not None and last.index == part.index and part.id is None:
            last.arguments += part.arguments
        else:
            first.tool_calls.append(part)
    first.token_ids = first.token_ids + second.token_ids
    if second.logprobs is not None:
        first.logprobs = (first.logprobs or []) + second.logprobs
    if first.prompt_logprobs is None:
        first.prompt_logprobs = second.prompt_logprobs
    return first


def trim_logprobs(entries: list[TokenLogprob], top_n: int) -> list[TokenLogprob]:
    for entry in entries:
        entry.top = entry.top[:top_n]
    return entries
