"""vLLM's chat-completion object, for the routes that are vLLM's OpenAI server (ours, and vLLM behind a gateway).

``VllmShape`` holds what differs between vLLM builds and gateways; everything else is vLLM's shape for gpt-oss:
key order, ``refusal``/``annotations``/``audio``/``function_call`` nulls, ``stop_reason``, ``kv_transfer_params``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from routes.shared.ids import token_text
from server.choices import ChoiceResults
from server.types import ChatResult, PromptLogprobs, TokenLogprob, ToolCallDelta


@dataclass(frozen=True, slots=True)
class VllmShape:
    model: str  # echoed as ``model``
    # The reasoning text's key: ``reasoning`` (vLLM >= 0.10) or ``reasoning_content`` (older builds).
    reasoning_key: str = "reasoning"
    # An answer without tool calls: no ``tool_calls`` key (newer builds) or ``tool_calls: []`` (older).
    empty_tool_calls: Literal["list", "omit"] = "omit"
    # ``choices[].token_ids`` always present (null unless ``return_token_ids``), or only when asked.
    choice_token_ids: bool = True
    system_fingerprint: str | None = None
    # ``usage.prompt_tokens_details.cached_tokens`` when the prefix cache served some of the prompt (vLLM with
    # ``--enable-prompt-tokens-details``); otherwise ``prompt_tokens_details`` is null (and absent from chunks).
    prompt_tokens_details: bool = True


def openai_logprobs(entries: list[TokenLogprob] | None, tokens_as_ids: bool = False) -> dict[str, Any] | None:
    """``{"content": [...]}`` in OpenAI's chat logprobs shape. ``tokens_as_ids`` (vLLM's
    ``return_tokens_as_token_ids``): each ``token`` is ``token_id:N``; as vLLM writes it, the chosen token's ``bytes``
    stay its text's, the alternatives' are the ``token_id:N`` text's."""
    if entries is None:
        return None
    content = []
    for entry in entries:
        text = token_text(entry.token_id)
        content.append(
            {
                "token": f"token_id:{entry.token_id}" if tokens_as_ids else text,
                "logprob": max(entry.logprob, -9999.0),
                "bytes": list(text.encode()),
                "top_logprobs": [
                    {"token": (t := _token(tid, tokens_as_ids)), "logprob": max(lp, -9999.0), "bytes": list(t.encode())}
                    for tid, lp in entry.top
                ],
            }
        )
    return {"content": content}


def _token(token_id: int, as_id: bool) -> str:
    return f"token_id:{token_id}" if as_id else token_text(token_id)


def prompt_logprobs_body(entries: PromptLogprobs | None) -> list[dict[str, Any] | None] | None:
    """vLLM's ``prompt_logprobs``: per prompt token (the first None) ``{token_id: {logprob, rank, decoded_token}}``,
    the prompt token first; ``-inf`` as -9999.0 (vLLM's ``clamp_prompt_logprobs``)."""
    if entries is None:
        return None
    return [
        None
        if position is None
        else {
            str(e.token_id): {
                "logprob": max(e.logprob, -9999.0),
                "rank": e.rank,
                "decoded_token": token_text(e.token_id),
            }
            for e in position
        }
        for position in entries
    ]


def _details(cached: int, shape: VllmShape) -> dict[str, int] | None:
    return {"cached_tokens": cached} if shape.prompt_tokens_details and cached else None


def usage_body(prompt: int, completion: int, cached: int = 0, shape: VllmShape | None = None) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": _details(cached, shape) if shape is not None else None,
    }


def stream_usage_body(prompt: int, completion: int, cached: int = 0, shape: VllmShape | None = None) -> dict[str, Any]:
    """vLLM serialises stream chunks with ``exclude_unset``: ``prompt_tokens_details`` only when it is set."""
    body: dict[str, Any] = {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
    }
    details = _details(cached, shape) if shape is not None else None
    if details is not None:
        body["prompt_tokens_details"] = details
    return body


def tool_calls_body(result: ChatResult) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in result.tool_calls
    ]


def tool_call_delta(part: ToolCallDelta) -> dict[str, Any]:
    """vLLM's streamed tool-call part: id, type, index and name on the first part; index and arguments after."""
    if part.id is not None:
        return {
            "id": part.id,
            "type": "function",
            "index": part.index,
            "function": {"name": part.name, "arguments": part.arguments},
        }
    return {"index": part.index, "function": {"arguments": part.arguments}}


def message_body(result: ChatResult, shape: VllmShape, tool_choice: str = "auto", echo: bool = False) -> dict[str, Any]:
    """vLLM's harmony parser reports an empty answer (and empty reasoning) as null; with a ``required`` or named
    (``function``) tool_choice, or with ``echo`` (which prepends nothing on the harmony path: see
    ``routes/openai/request.py``), vLLM writes an empty answer as ``""``."""
    forced = tool_choice in ("required", "function") or echo
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.content or ("" if forced else None),
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
    }
    if result.tool_calls or shape.empty_tool_calls == "list":
        message["tool_calls"] = tool_calls_body(result)
    message[shape.reasoning_key] = result.reasoning
    return message


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What a chat answer's shape depends on, besides the result (the request's fields)."""

    return_token_ids: bool = False
    tool_choice: str = "auto"  # the core request's mode: ``auto``, ``none``, ``required``, ``function``
    tokens_as_ids: bool = False  # ``return_tokens_as_token_ids``
    echo: bool = False


def choice_body(result: ChatResult, index: int, shape: VllmShape, options: ChatOptions) -> dict[str, Any]:
    return_token_ids = options.return_token_ids
    choice: dict[str, Any] = {
        "index": index,
        "message": message_body(result, shape, options.tool_choice, options.echo),
        "logprobs": openai_logprobs(result.logprobs, options.tokens_as_ids),
        "finish_reason": result.finish_reason,
        "stop_reason": result.stop_reason,
    }
    if shape.choice_token_ids or return_token_ids:
        choice["token_ids"] = result.token_ids if return_token_ids else None
    return choice


def completion_body(
    answer: ChoiceResults,
    shape: VllmShape,
    *,
    completion_id: str,
    created: int,
    options: ChatOptions,
) -> dict[str, Any]:
    """The answer's choices in index order; usage as vLLM sums it (the shared prompt once, every choice's output);
    ``kv_transfer_params`` as the engine returned them (vLLM's ``final_res.kv_transfer_params``)."""
    usage = answer.usage
    first = answer.results[0]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": shape.model,
        "choices": [choice_body(r, i, shape, options) for i, r in enumerate(answer.results)],
        "service_tier": None,
        "system_fingerprint": shape.system_fingerprint,
        "usage": usage_body(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, shape),
        "prompt_logprobs": prompt_logprobs_body(first.prompt_logprobs),
        "prompt_token_ids": first.prompt_token_ids if options.return_token_ids else None,
        "kv_transfer_params": first.kv_transfer_params,
    }
