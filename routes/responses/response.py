"""The response object's fields that echo the request, and the request as the core's ``ChatRequest``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routes.responses.items import Item, echo_tools, to_messages, tool_choice_to_core, tools_to_core
from routes.responses.request import OUTPUT_LOGPROBS, CreateResponse, TextParam
from routes.responses.settings import section
from server.context import ServerContext
from server.errors import InvalidRequestError, ModelNotFoundError
from server.types import ChatMessage, ChatRequest, SamplingOptions


def check_model(ctx: ServerContext, model: str | None) -> str:
    """The model name to echo; raises for an unknown one."""
    primary = ctx.settings.engine.served_model_name
    if model is None:
        return primary
    if model != primary and model not in section(ctx).model_aliases:
        raise ModelNotFoundError(model)
    return model


def skeleton(
    ctx: ServerContext, body: CreateResponse, *, response_id: str, created_at: float, model: str, store: bool
) -> dict[str, Any]:
    """The object before any output: ``status`` in progress, the request's settings echoed as OpenAI echoes them.
    ``usage`` comes with the end (the schema has no null for it)."""
    reasoning = body.reasoning
    effort = (reasoning.effort if reasoning else None) or ctx.settings.harmony.default_reasoning_effort
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(created_at),
        "status": "in_progress",
        "background": bool(body.background),
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "max_tool_calls": body.max_tool_calls,
        "model": model,
        "output": [],
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "prompt_cache_key": body.prompt_cache_key,
        "reasoning": {
            "effort": effort,
            "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None,
        },
        "safety_identifier": body.safety_identifier,
        "service_tier": "default",
        "store": store,
        "temperature": body.temperature if body.temperature is not None else 1.0,
        "text": (body.text or TextParam()).echo(),
        "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
        "tools": echo_tools(body.tools or []),
        "top_logprobs": body.top_logprobs or 0,
        "top_p": body.top_p if body.top_p is not None else 1.0,
        "truncation": body.truncation or "disabled",
        "metadata": body.metadata or {},
    } | ({"user": body.user} if body.user is not None else {})  # the schema's ``user`` is a string, never null


def to_core(
    body: CreateResponse,
    items: list[Item],
    reasoning_of: Callable[[Item, str], str],
    request_id: str,
    first_input: int = 0,
) -> ChatRequest:
    """The conversation (earlier items, then this request's) under this request's instructions and settings."""
    tools = tools_to_core(body.tools or [])
    choice, offered = tool_choice_to_core(body.tool_choice, tools)
    messages: list[ChatMessage] = []
    if body.instructions:
        messages.append(ChatMessage(role="developer", content=body.instructions))
    messages += to_messages(items, reasoning_of, first_input)
    if not any(m.role != "developer" for m in messages):
        raise InvalidRequestError("The input holds no message for the model to answer.", param="input")
    sampling = SamplingOptions(
        max_tokens=body.max_output_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        seed=body.seed,
        repetition_penalty=body.repetition_penalty,
        logprobs=body.includes(OUTPUT_LOGPROBS) or bool(body.top_logprobs),
        top_logprobs=body.top_logprobs or 0,
    )
    return ChatRequest(
        messages=messages,
        sampling=sampling,
        reasoning_effort=body.reasoning.core_effort if body.reasoning else None,
        tools=offered,
        tool_choice=choice,
        response_format=(body.text or TextParam()).to_core(),
        request_id=request_id,
    )
