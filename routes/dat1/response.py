"""llama-server's non-streaming answer: its key order, ``timings``, ``reasoning_content``, token probabilities."""

from __future__ import annotations

import math
from typing import Any

from routes.dat1 import ids
from routes.dat1.settings import Dat1Settings
from routes.shared.ids import token_text
from server.types import (
    ChatResult,
    FinishReason,
    TokenLogprob,
)

FLOAT_LOWEST = -3.4028234663852886e38  # llama-server writes log(0) as std::numeric_limits<float>::lowest()

# With reasoning_format "none" the analysis message stays in `content` as llama-server's raw harmony text.
RAW_REASONING_START = "<|channel|>analysis<|message|>"

RAW_REASONING_END = "<|end|>"


def _div(a: float, b: float) -> float:
    """C++ double division: x/0 is +-inf, 0/0 is nan (both serialise as null, as nlohmann writes them)."""
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a)
    return a / b


def _ms(value: float) -> float:
    """llama-server's durations are whole microseconds / 1e3."""
    return round(value * 1000.0) / 1e3


def timings_body(
    prompt_n: int, prompt_ms: float, predicted_n: int, predicted_ms: float, *, era: str, cache_n: int = 0
) -> dict[str, Any]:
    """``result_timings::to_json`` from measured durations (ms). ``prompt_n`` counts the prompt tokens evaluated
    (those not served from a cache); ``cache_n`` (eras B and C) the cached ones."""
    p_ms, g_ms = _ms(prompt_ms), _ms(predicted_ms)
    body: dict[str, Any] = {"cache_n": cache_n} if era != "A" else {}
    body["prompt_n"] = prompt_n
    body["prompt_ms"] = p_ms
    body["prompt_per_token_ms"] = _div(p_ms, prompt_n)
    body["prompt_per_second"] = _div(1e3, p_ms) * prompt_n
    body["predicted_n"] = predicted_n
    body["predicted_ms"] = g_ms
    body["predicted_per_token_ms"] = _div(g_ms, predicted_n)
    body["predicted_per_second"] = _div(1e3, g_ms) * predicted_n
    return body


def usage_body(prompt: int, completion: int, *, era: str, cache_n: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "completion_tokens": completion,
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
    }
    if era == "C":
        body["prompt_tokens_details"] = {"cached_tokens": cache_n}
    return body


def finish_reason(reason: FinishReason) -> str:
    """llama-server: "stop" on EOS or a stop word ("tool_calls" when the message has calls), else "length"."""
    return reason if reason in ("stop", "tool_calls") else "length"


def strip_reasoning(text: str) -> str:
    """llama-server strips the reasoning with ``std::isspace`` (ASCII whitespace only)."""
    return text.strip(" \t\n\v\f\r")


def probs_body(entries: list[TokenLogprob]) -> dict[str, Any]:
    """``{"content": [...]}`` in llama-server's shape: ``id, token, bytes, logprob, top_logprobs``."""

    def one(token_id: int, logprob: float) -> dict[str, Any]:
        text = token_text(token_id)
        value = logprob if math.isfinite(logprob) else FLOAT_LOWEST
        return {"id": token_id, "token": text, "bytes": list(text.encode()), "logprob": value}

    return {
        "content": [{**one(e.token_id, e.logprob), "top_logprobs": [one(t, lp) for t, lp in e.top]} for e in entries]
    }


def message_body(result: ChatResult, *, raw_reasoning: bool) -> dict[str, Any]:
    """``common_chat_msg::to_json_oaicompat``: role, reasoning_content (only if non-empty), content (null when
    there are tool calls and no text), tool_calls (only if any; keys type, function, id)."""
    content = result.content or ""
    message: dict[str, Any] = {"role": "assistant"}
    if raw_reasoning:
        if result.reasoning:
            content = RAW_REASONING_START + result.reasoning + RAW_REASONING_END + content
    elif reasoning := strip_reasoning(result.reasoning or ""):
        message["reasoning_content"] = reasoning
    message["content"] = None if not content and result.tool_calls else content
    if result.tool_calls:
        message["tool_calls"] = [
            {"type": "function", "function": {"name": c.name, "arguments": c.arguments}, "id": ids.new_tool_call_id()}
            for c in result.tool_calls
        ]
    return message


def choice_body(result: ChatResult, index: int, *, n_probs: int = 0, raw_reasoning: bool = False) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "finish_reason": finish_reason(result.finish_reason),
        "index": index,
        "message": message_body(result, raw_reasoning=raw_reasoning),
    }
    if n_probs > 0 and result.logprobs:
        choice["logprobs"] = probs_body(result.logprobs)
    return choice


def completion_body(
    results: list[ChatResult],
    *,
    completion_id: str,
    model: str,
    settings: Dat1Settings,
    n_probs: int = 0,
    raw_reasoning: bool = False,
    timings: bool = True,
    cache_n: int = 0,
) -> dict[str, Any]:
    """``to_json_oaicompat_chat``: choices, created, model, system_fingerprint, object, usage, id, timings. With
    ``n_cmpl`` choices, llama-server answers choice 0's body with every choice's ``choices`` entry appended: usage
    and timings are choice 0's alone."""
    era = settings.stream_era
    first = results[0]
    usage = first.usage
    body: dict[str, Any] = {
        "choices": [choice_body(r, i, n_probs=n_probs, raw_reasoning=raw_reasoning) for i, r in enumerate(results)],
        "created": ids.now(),
        "model": model,
        "system_fingerprint": settings.system_fingerprint,
        "object": "chat.completion",
        "usage": usage_body(usage.prompt_tokens, usage.completion_tokens, era=era, cache_n=cache_n),
        "id": completion_id,
    }
    if timings:
        t = first.timings
        prompt_n = usage.prompt_tokens - cache_n
        body["timings"] = timings_body(
            prompt_n, t.prompt_ms, usage.completion_tokens, t.predicted_ms, era=era, cache_n=cache_n
        )
    return body
