"""llama-server's chunks, with the build era's final chunk(s), usage and timings (``Dat1Settings.stream_era``), for
one choice or the ``n_cmpl`` choices of newer builds (``Dat1Settings.n_cmpl``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from routes.dat1 import ids
from routes.dat1.errors import error_info
from routes.dat1.response import (
    RAW_REASONING_END,
    RAW_REASONING_START,
    finish_reason,
    probs_body,
    strip_reasoning,
    timings_body,
    usage_body,
)
from routes.dat1.settings import Dat1Settings
from server.choices import IndexedEvent
from server.errors import InternalError
from server.http.jsonio import dumps
from server.types import (
    Delta,
    Finish,
)


@dataclass(slots=True)
class StreamOptions:
    completion_id: str
    model: str
    prompt_tokens: int
    n_probs: int = 0
    raw_reasoning: bool = False
    timings: bool = True
    timings_per_token: bool = False
    include_usage: bool = False


def sse_bytes(payload: bytes, event_lines: bool) -> bytes:
    return (b"event: message\n" if event_lines else b"") + b"data: " + payload + b"\n\n"


@dataclass(slots=True)
class ChoiceState:
    """One choice's progress: its role chunk sent, raw-reasoning state, stripped reasoning, tokens, first token."""

    started: bool = False
    raw_state: int = 0  # raw reasoning: 0 not begun, 1 analysis open, 2 closed
    reasoning_raw: str = ""
    reasoning_sent: str = ""
    predicted_n: int = 0
    first_token: float | None = None


async def encode_stream(
    events: AsyncIterator[IndexedEvent], *, settings: Dat1Settings, opts: StreamOptions, n: int = 1
) -> AsyncIterator[bytes]:
    """llama-server's chunks (``choices, created, id, model, system_fingerprint, object``): a role chunk
    ``{"role":"assistant","content":null}`` with the first token, one chunk per reasoning/content/tool-call diff,
    then the era's final chunk(s) with usage and timings, then ``data: [DONE]``. With ``n`` choices (``n_cmpl``),
    each is a task of its own: its chunks carry its ``index`` as they come, and it ends with its own final chunk(s)
    (its own usage and timings); ``[DONE]`` follows the last."""
    era = settings.stream_era
    lines = settings.sse_event_lines

    def chunk(index: int, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {
            "choices": [{"finish_reason": reason, "index": index, "delta": delta}],
            "created": ids.now(),
            "id": opts.completion_id,
            "model": opts.model,
            "system_fingerprint": settings.system_fingerprint,
            "object": "chat.completion.chunk",
        }

    states = [ChoiceState() for _ in range(n)]
    opened = time.time()
    try:
        async for index, event in events:
            state = states[index]
            if isinstance(event, Delta):
                if event.token_ids:
                    state.predicted_n += len(event.token_ids)
                    state.first_token = state.first_token or time.time()
                deltas: list[dict[str, Any]] = []
                if not state.started:
                    deltas.append({"role": "assistant", "content": None})
                    state.started = True
                if event.reasoning and opts.raw_reasoning:
                    deltas.append({"content": (RAW_REASONING_START if state.raw_state == 0 else "") + event.reasoning})
                    state.raw_state = 1
                elif event.reasoning:
                    state.reasoning_raw += event.reasoning
                    stripped = strip_reasoning(state.reasoning_raw)
                    if len(stripped) > len(state.reasoning_sent):
                        deltas.append({"reasoning_content": stripped[len(state.reasoning_sent) :]})
                        state.reasoning_sent = stripped
                closing = ""
                if state.raw_state == 1 and (event.content or event.tool_calls):
                    closing, state.raw_state = RAW_REASONING_END, 2
                if event.content or closing:
                    deltas.append({"content": closing + event.content})
                for part in event.tool_calls:
                    call: dict[str, Any] = {"index": part.index}
                    if part.id is not None:
                        call["id"] = ids.new_tool_call_id()
                        call["type"] = "function"
                        call["function"] = {"name": part.name, "arguments": part.arguments}
                    elif part.arguments:
                        call["function"] = {"arguments": part.arguments}
                    else:
                        continue
                    deltas.append({"tool_calls": [call]})
                if not deltas:
                    continue
                chunks = [chunk(index, d) for d in deltas]
                last = chunks[-1]
                if opts.n_probs > 0 and event.logprobs:
                    last["choices"][0]["logprobs"] = probs_body(event.logprobs)
                if opts.timings_per_token and opts.timings:
                    at = time.time()
                    first = state.first_token or at
                    last["timings"] = timings_body(
                        opts.prompt_tokens, (first - opened) * 1000.0, state.predicted_n, (at - first) * 1000.0, era=era
                    )
                for body in chunks:
                    yield sse_bytes(dumps(body), lines)
                continue
            finish: Finish = event
            if finish.truncated:  # an error, or an answer the server cut short: never a normal finish
                info = error_info(finish.error_of(InternalError), settings)
                if era == "C":  # a `data:` event with the envelope, and no [DONE]
                    yield sse_bytes(dumps({"error": info}), lines)
                    return
                yield b"error: " + dumps(info) + b"\n\n"
                break
            usage = finish.usage
            final = chunk(index, {}, finish_reason(finish.reason))
            out = [final]
            cache_n = usage.cached_tokens
            usage_json = usage_body(usage.prompt_tokens, usage.completion_tokens, era=era, cache_n=cache_n)
            if era == "A":
                final["usage"] = usage_json
            elif era == "B" or opts.include_usage:
                out.append({**chunk(index, {}), "choices": [], "usage": usage_json})
            if opts.timings:
                t = finish.timings
                out[-1]["timings"] = timings_body(
                    usage.prompt_tokens - cache_n,
                    t.prompt_ms,
                    usage.completion_tokens,
                    t.predicted_ms,
                    era=era,
                    cache_n=cache_n,
                )
            if not state.started and usage.completion_tokens:
                out.insert(0, chunk(index, {"role": "assistant", "content": None}))
            for body in out:
                yield sse_bytes(dumps(body), lines)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield sse_bytes(b"[DONE]", lines)
