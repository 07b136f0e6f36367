"""Ollama's chat and generate objects: keys in Go's struct order, empty fields omitted where Go omits them.

Durations are nanoseconds measured on this request: ``load_duration`` from its arrival until generation started
(parsing, rendering, admission: Ollama's time to have the model ready), ``prompt_eval_duration`` until the first
token, ``eval_duration`` from there to the last, ``total_duration`` from its arrival until the final object. A
phase that happened is at least 1 ns (Go omits zero durations). ``done_reason`` is ``stop`` (tool calls included,
as Ollama reports them) or ``length``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from routes.ollama import ids
from routes.shared.ids import token_text
from server.errors import InternalError
from server.types import FinishReason, Timings, TokenLogprob, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class Reply:
    """What every object of one answer shares."""

    model: str  # echoed as the client sent it
    received: float  # time.time() when the request arrived
    top_logprobs: int | None = None  # None: no logprobs asked


def _ns(seconds: float, happened: bool = True) -> int:
    return max(int(seconds * 1e9), 1 if happened else 0)


def metrics(reply: Reply, usage: Usage, timings: Timings) -> dict[str, int]:
    """Ollama's ``Metrics`` (zero values omitted, as Go's ``omitempty`` does)."""
    first = timings.first_token or timings.end or timings.start
    end = timings.end or first
    values = {
        "total_duration": _ns(time.time() - reply.received),
        "load_duration": _ns(timings.start - reply.received),
        "prompt_eval_count": usage.prompt_tokens,
        "prompt_eval_duration": _ns(first - timings.start, usage.prompt_tokens > 0),
        "eval_count": usage.completion_tokens,
        "eval_duration": _ns(end - first, usage.completion_tokens > 0),
    }
    return {k: v for k, v in values.items() if v}


def done_reason(reason: FinishReason) -> str:
    return "length" if reason == "length" else "stop"


def logprobs_body(entries: list[TokenLogprob] | None, top: int | None) -> list[dict[str, Any]]:
    """Ollama's ``logprobs``: every generated token (harmony's control tokens too), as its runner reports them."""
    if top is None or not entries:
        return []

    def entry(token_id: int, logprob: float) -> dict[str, Any]:
        text = token_text(token_id)
        body: dict[str, Any] = {"token": text, "logprob": logprob}
        if text:
            body["bytes"] = list(text.encode())
        return body

    out = []
    for e in entries:
        item = entry(e.token_id, e.logprob)
        if top:
            item["top_logprobs"] = [entry(t, lp) for t, lp in e.top[:top]]
        out.append(item)
    return out


def tool_calls_body(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """Ollama's tool calls: arguments as a JSON object; a call whose arguments are not one fails, as in Ollama."""
    out = []
    for index, call in enumerate(calls):
        raw = call.arguments or "{}"
        try:
            arguments = json.loads(raw)
        except ValueError as exc:
            raise InternalError(f"error parsing tool call: raw='{raw}', err={exc}") from None
        if not isinstance(arguments, dict):
            raise InternalError(f"error parsing tool call: raw='{raw}', err=not a JSON object")
        function = {"index": index, "name": call.name, "arguments": arguments}
        out.append({"id": ids.new_call_id(), "function": function})
    return out


def message(content: str, thinking: str = "", tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        body["thinking"] = thinking
    if tool_calls:
        body["tool_calls"] = tool_calls
    return body


def chat_object(
    reply: Reply,
    msg: dict[str, Any],
    *,
    done: bool = False,
    reason: str | None = None,
    logprobs: list[dict[str, Any]] | None = None,
    stats: dict[str, int] | None = None,
) -> dict[str, Any]:
    """One ``ChatResponse``: a streamed part, the final object, or the whole answer."""
    body: dict[str, Any] = {"model": reply.model, "created_at": ids.created_at(), "message": msg, "done": done}
    if reason:
        body["done_reason"] = reason
    if logprobs:
        body["logprobs"] = logprobs
    return {**body, **(stats or {})}


def generate_object(
    reply: Reply,
    text: str,
    thinking: str = "",
    *,
    done: bool = False,
    reason: str | None = None,
    context: list[int] | None = None,
    stats: dict[str, int] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    logprobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One ``GenerateResponse``."""
    body: dict[str, Any] = {"model": reply.model, "created_at": ids.created_at(), "response": text}
    if thinking:
        body["thinking"] = thinking
    body["done"] = done
    if reason:
        body["done_reason"] = reason
    if context:
        body["context"] = context
    body.update(stats or {})
    if tool_calls:
        body["tool_calls"] = tool_calls
    if logprobs:
        body["logprobs"] = logprobs
    return body
