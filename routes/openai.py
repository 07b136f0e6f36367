"""Plain OpenAI-compatible API (``/v1``), shaped like vLLM's OpenAI server for gpt-oss.

paths -> auth -> request model + to_core() -> response builder -> stream encoder -> error renderer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from routes import Provider
from routes.common import (
    Ctx,
    MessageIn,
    NamedToolChoice,
    ToolDef,
    complete,
    messages_to_core,
    open_stream,
    openai_logprobs,
    parse_body,
    response_format_to_core,
    tool_choice_to_core,
    tools_to_core,
)
from server.context import ServerContext
from server.errors import InvalidRequestError, ModelNotFoundError, RateLimitError, ServerError
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import SSE_DONE, dumps, sse_event
from server.http.routing import error_route_class
from server.http.sse import sse_response
from server.types import ChatRequest, ChatResult, Delta, Event, Finish, SamplingOptions, ToolCallDelta

NAME = "openai"
CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"


def new_id() -> str:
    """vLLM's ``chatcmpl-`` + a dashless uuid4 (tests pin it)."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> float:
    """The clock (tests pin it)."""
    return time.time()


# ---- error renderer ---------------------------------------------------------------------------------


def error_body(exc: ServerError) -> dict[str, Any]:
    return {"error": {"message": exc.message, "type": exc.kind, "param": exc.param, "code": exc.code}}


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitError) else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return Response(dumps(error_body(exc)), status_code=exc.status, media_type="application/json", headers=headers)


# ---- auth -------------------------------------------------------------------------------------------


def authenticate(request: Request, ctx: Ctx) -> None:
    keys = ctx.keys
    require_key(
        keys,
        bearer_token(request),
        missing="You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        invalid="Incorrect API key provided.",
    )


# ---- request model ----------------------------------------------------------------------------------

INT64 = 2**63 - 1


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False
    continuous_usage_stats: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request with vLLM's extras (top_k, min_p, repetition_penalty, ...).

    Unknown fields are ignored, as vLLM and OpenAI do.
    """

    model_config = ConfigDict(extra="ignore")

    messages: list[MessageIn] = Field(min_length=1, max_length=4096)
    model: str | None = Field(None, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=INT64)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64)
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    min_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    n: int = Field(1, ge=1, le=128)
    seed: int | None = Field(None, ge=-(2**63), le=INT64)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0, allow_inf_nan=False)
    logit_bias: dict[str, float] | None = Field(None, max_length=1024)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0, le=INT64)
    return_token_ids: bool = False

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [value] if isinstance(value, str) else value

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, bias in (value or {}).items():
            if not key.isdigit() or int(key) >= 201088:
                raise ValueError(f"logit_bias key '{key}' is not a token id")
            if not -100.0 <= bias <= 100.0:
                raise ValueError("logit_bias values must be between -100 and 100")
        return value

    def to_core(self, request_id: str) -> ChatRequest:
        if self.n != 1:
            raise InvalidRequestError("Only n=1 is supported.", param="n")
        if self.top_logprobs and not self.logprobs:
            raise InvalidRequestError("top_logprobs requires logprobs to be true.", param="top_logprobs")
        tools = tools_to_core(self.tools)
        sampling = SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            seed=self.seed,
            stop=list(self.stop or []),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            repetition_penalty=self.repetition_penalty,
            logit_bias={int(k): v for k, v in self.logit_bias.items()} if self.logit_bias else None,
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs or 0,
            ignore_eos=self.ignore_eos,
            min_tokens=self.min_tokens,
        )
        return ChatRequest(
            messages=messages_to_core(self.messages),
            sampling=sampling,
            reasoning_effort=self.reasoning_effort,
            tools=tools,
            tool_choice=tool_choice_to_core(self.tool_choice, tools),
            response_format=response_format_to_core(self.response_format),
            request_id=request_id,
        )


# ---- response builder -------------------------------------------------------------------------------


def usage_body(prompt: int, completion: int, reasoning: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
    }


def tool_calls_body(result: ChatResult) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in result.tool_calls
    ]


def completion_body(
    result: ChatResult, *, completion_id: str, created: int, model: str, return_token_ids: bool
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
    }
    if result.tool_calls:
        message["tool_calls"] = tool_calls_body(result)
    message["reasoning"] = result.reasoning
    usage = result.usage
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": openai_logprobs(result.logprobs),
                "finish_reason": result.finish_reason,
                "stop_reason": result.stop_reason,
                "token_ids": result.token_ids if return_token_ids else None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage_body(usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens),
        "prompt_logprobs": None,
        "prompt_token_ids": result.prompt_token_ids if return_token_ids else None,
        "kv_transfer_params": None,
    }


# ---- stream encoder ---------------------------------------------------------------------------------


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


async def encode_stream(
    events: AsyncIterator[Event],
    *,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    return_token_ids: bool,
    prompt_token_ids: list[int],
) -> AsyncIterator[bytes]:
    def chunk(choice: dict[str, Any] | None, **extra: Any) -> bytes:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice] if choice is not None else [],
        }
        body.update(extra)
        return sse_event(body)

    def choice(delta: dict[str, Any], logprobs: Any = None, **extra: Any) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": None, **extra}

    # The hot path: a text delta without logprobs or token ids. Everything but the text is constant per stream,
    # so it is serialised once (same bytes as ``chunk(choice({key: text}))``).
    head = sse_event({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model})
    head = head[: -len(b"}\n\n")] + b',"choices":[{"index":0,"delta":{'
    tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'
    content_head, reasoning_head = head + b'"content":', head + b'"reasoning":'

    first_extra = {"prompt_token_ids": prompt_token_ids} if return_token_ids else {}
    yield chunk(choice({"role": "assistant", "content": ""}), **first_extra)
    try:
        async for event in events:
            if isinstance(event, Delta):
                if event.logprobs is None and not return_token_ids and not event.tool_calls:
                    if event.reasoning:
                        yield reasoning_head + dumps(event.reasoning) + tail
                    if event.content:
                        yield content_head + dumps(event.content) + tail
                    continue
                logprobs = openai_logprobs(event.logprobs)
                ids = {"token_ids": event.token_ids} if return_token_ids else {}
                if event.reasoning:
                    yield chunk(choice({"reasoning": event.reasoning}, logprobs, **ids))
                    logprobs, ids = None, {}
                if event.content:
                    yield chunk(choice({"content": event.content}, logprobs, **ids))
                    logprobs, ids = None, {}
                for part in event.tool_calls:
                    yield chunk(choice({"tool_calls": [tool_call_delta(part)]}, logprobs, **ids))
                    logprobs, ids = None, {}
                if logprobs is not None or ids:
                    yield chunk(choice({}, logprobs, **ids))
                continue
            finish: Finish = event
            if finish.reason == "error":
                err = {"message": finish.error or "Generation failed.", "type": "server_error", "param": None}
                yield sse_event({"error": {**err, "code": None}})
                break
            yield chunk(
                {
                    "index": 0,
                    "delta": {},
                    "logprobs": None,
                    "finish_reason": finish.reason,
                    "stop_reason": finish.stop_reason,
                }
            )
            if include_usage:
                u = finish.usage
                usage = usage_body(u.prompt_tokens, u.completion_tokens, u.reasoning_tokens)
                del usage["prompt_tokens_details"]  # vLLM serialises stream chunks without unset fields
                yield chunk(None, usage=usage)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE


# ---- paths ------------------------------------------------------------------------------------------


def check_model(ctx: ServerContext, model: str | None) -> str:
    """The model name to echo; raises for an unknown one."""
    if model is None:
        return ctx.settings.engine.served_model_name
    if model not in ctx.model_names:
        raise ModelNotFoundError(model)
    return model


def model_card(ctx: ServerContext, name: str) -> dict[str, Any]:
    created = int(ctx.started_at)
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": ctx.settings.providers.openai.owned_by,
        "root": name,
        "parent": None,
        "max_model_len": ctx.engine.info.max_model_len,
        "permission": [
            {
                "id": f"modelperm-{uuid.uuid5(uuid.NAMESPACE_URL, name).hex}",
                "object": "model_permission",
                "created": created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }


def router(ctx: ServerContext) -> APIRouter:
    """Mounted at ``/v1`` unless AI/ML API owns that prefix; always reachable under ``/openai/v1``."""
    prefixes = ["/openai"] if ctx.settings.providers.v1_owner != "openai" else ["", "/openai"]
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])
    for prefix in prefixes:
        _mount(api, prefix)
    return api


def _mount(api: APIRouter, prefix: str) -> None:
    @api.post(prefix + CHAT_PATH, include_in_schema=not prefix)
    async def chat_completions(request: Request, ctx: Ctx) -> Response:
        body = parse_body(ChatCompletionRequest, await read_json_object(request, ctx.settings.limits.max_body_bytes))
        model = check_model(ctx, body.model)
        completion_id = new_id()
        prepared = ctx.service.prepare(body.to_core(completion_id))
        created = int(now())
        if body.stream:
            events = await open_stream(ctx, prepared)
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return sse_response(
                encode_stream(
                    events,
                    completion_id=completion_id,
                    created=created,
                    model=model,
                    include_usage=include_usage,
                    return_token_ids=body.return_token_ids,
                    prompt_token_ids=prepared.prompt_token_ids,
                )
            )
        result = await complete(ctx, request, prepared)
        payload = completion_body(
            result, completion_id=completion_id, created=created, model=model, return_token_ids=body.return_token_ids
        )
        return Response(dumps(payload), media_type="application/json")

    @api.get(prefix + MODELS_PATH, include_in_schema=not prefix)
    async def list_models(ctx: Ctx) -> Response:
        name = ctx.settings.engine.served_model_name
        return Response(dumps({"object": "list", "data": [model_card(ctx, name)]}), media_type="application/json")

    @api.get(prefix + MODELS_PATH + "/{model_id:path}", include_in_schema=not prefix)
    async def get_model(model_id: str, ctx: Ctx) -> Response:
        return Response(dumps(model_card(ctx, check_model(ctx, model_id))), media_type="application/json")


PROVIDER = Provider(
    name=NAME,
    enabled=lambda ctx: ctx.settings.providers.openai.enabled,
    router=router,
    paths=f"{CHAT_PATH}, {MODELS_PATH}",
    prefixes=lambda ctx: ("/openai/v1", "/v1") if ctx.settings.providers.v1_owner == "openai" else ("/openai/v1",),
    render_error=render_error,
)
