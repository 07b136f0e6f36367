"""Oxen.ai inference API (``/api/ai``): OpenAI-style chat completions plus Oxen's model catalogue.

The hub is Elixir/Phoenix: stream chunks come with alphabetically sorted keys, the completion object is
minimal (no logprobs, no system_fingerprint), and errors take one of two shapes::

    {"error": {"type", "title", "detail"}, "status": "error", "status_message": "<type>"}
    {"error": {"message": "Model not found: <name>"}}

paths -> auth -> request model + to_core() -> response builder -> stream encoder -> error renderer.
"""

from __future__ import annotations

import functools
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
    parse_body,
    response_format_to_core,
    tool_choice_to_core,
    tools_to_core,
)
from server.context import ServerContext
from server.errors import (
    AuthenticationError,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    RateLimitError,
    RequestError,
    ServerError,
)
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import SSE_DONE, dumps, sse_event
from server.http.routing import error_route_class
from server.http.sse import sse_response
from server.settings import OxenSettings
from server.types import ChatRequest, ChatResult, Delta, Event, Finish, SamplingOptions, ToolCall

NAME = "oxen"
BASE = "/api/ai"
CHAT_PATH = BASE + "/chat/completions"
MODELS_PATH = BASE + "/models"


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4()}"


def now() -> int:
    return int(time.time())


def sort_keys(value: Any) -> Any:
    """The same JSON value with every object's keys in alphabetical order (as Elixir small maps encode)."""
    if isinstance(value, dict):
        return {k: sort_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sort_keys(v) for v in value]
    return value


# ---- error renderer ---------------------------------------------------------------------------------

TITLES = {
    "unauthenticated": "You must be authenticated to perform this action.",
    "invalid_params": "Invalid parameters supplied, please check your request and try again.",
    "resource_not_found": "The requested resource could not be found",
    "too_many_requests": "Too many requests, please try again later.",
    "unknown_error": "An unknown error occurred.",
}


def _error_type(exc: ServerError) -> str:
    if isinstance(exc, AuthenticationError):
        return "unauthenticated"
    if isinstance(exc, NotFoundError):
        return "resource_not_found"
    if isinstance(exc, RateLimitError):
        return "too_many_requests"
    if isinstance(exc, RequestError):
        return "invalid_params"
    return "unknown_error"


def error_body(exc: ServerError) -> dict[str, Any]:
    if isinstance(exc, ModelNotFoundError):
        return {"error": {"message": f"Model not found: {exc.model}"}}
    kind = _error_type(exc)
    error = {"type": kind, "title": TITLES[kind]}
    if kind != "unauthenticated":
        error["detail"] = exc.message
    return {"error": error, "status": "error", "status_message": kind}


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitError) else None
    return Response(dumps(error_body(exc)), status_code=exc.status, media_type="application/json", headers=headers)


# ---- auth -------------------------------------------------------------------------------------------


def authenticate(request: Request, ctx: Ctx) -> None:
    keys = ctx.keys
    require_key(keys, bearer_token(request), missing="Missing API key.", invalid="Invalid API key.")


# ---- request model ----------------------------------------------------------------------------------


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """What we accept on ``POST /api/ai/chat/completions`` (Oxen's ``ChatCompletionRequest`` plus the
    OpenAI fields its SDK clients send). Unknown fields are ignored. Its JSON Schema is the model's
    ``request_schema``."""

    model_config = ConfigDict(extra="ignore", title="gpt-oss-120b chat completion request")

    model: str = Field(min_length=1, max_length=256, description="Model ID to use")
    messages: list[MessageIn] = Field(min_length=1, max_length=4096, description="The conversation so far")
    stream: bool = Field(False, description="Stream the answer as server-sent events")
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1, description="Maximum tokens to generate")
    max_completion_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1)
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    target_namespace: str | None = Field(None, max_length=256, description="Namespace to bill")
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [value] if isinstance(value, str) else value

    def to_core(self, request_id: str) -> ChatRequest:
        tools = tools_to_core(self.tools)
        sampling = SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=list(self.stop or []),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
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


@functools.cache
def request_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the request we accept, derived from the request model."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **ChatCompletionRequest.model_json_schema()}


def precheck(raw: dict[str, Any]) -> None:
    """Oxen's own messages for the two fields every chat call needs (before generic validation)."""
    if raw.get("model") in (None, ""):
        raise InvalidRequestError("You must specify a model to call", param="model")
    if raw.get("messages") in (None, []):
        raise InvalidRequestError("Messages array cannot be empty", param="messages")


# ---- response builder -------------------------------------------------------------------------------


def tool_calls_body(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "index": i, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for i, c in enumerate(calls)
    ]


def completion_body(
    result: ChatResult, settings: OxenSettings, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    if result.tool_calls:
        # as in Oxen's documented tool-call example
        message: dict[str, Any] = {
            "content": result.content,
            "role": "assistant",
            "tool_calls": tool_calls_body(result.tool_calls),
        }
    else:
        message = {"role": "assistant", "content": result.content}
    if settings.reasoning_field:
        message[settings.reasoning_field] = result.reasoning
    usage = result.usage
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason}],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }
    return sort_keys(body) if settings.sort_keys == "all" else body


# ---- stream encoder ---------------------------------------------------------------------------------


async def encode_stream(
    events: AsyncIterator[Event],
    settings: OxenSettings,
    *,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    def chunk(delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any) -> bytes:
        choices = [] if delta is None else [{"delta": delta, "finish_reason": finish_reason, "index": 0}]
        body = {
            "choices": choices,
            "created": created,
            "id": completion_id,
            "model": model,
            "object": "chat.completion.chunk",
            **extra,
        }
        return sse_event(body if settings.sort_keys == "none" else sort_keys(body))

    if settings.stream_role_chunk:
        yield chunk({"content": "", "role": "assistant"})
    try:
        async for event in events:
            if isinstance(event, Delta):
                if event.reasoning and settings.reasoning_field:
                    yield chunk({settings.reasoning_field: event.reasoning})
                if event.content:
                    yield chunk({"content": event.content})
                for part in event.tool_calls:
                    call: dict[str, Any] = {"index": part.index, "function": {"arguments": part.arguments}}
                    if part.id is not None:
                        call.update(id=part.id, type="function")
                        call["function"]["name"] = part.name
                    yield chunk({"tool_calls": [call]})
                continue
            finish: Finish = event
            if finish.reason == "error":
                yield sse_event(error_body(ServerError(finish.error or "Generation failed.")))
                break
            yield chunk({}, finish.reason)
            if include_usage and settings.stream_usage:
                u = finish.usage
                usage = {
                    "completion_tokens": u.completion_tokens,
                    "prompt_tokens": u.prompt_tokens,
                    "total_tokens": u.total_tokens,
                }
                yield chunk(None, usage=usage)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE


# ---- paths ------------------------------------------------------------------------------------------


def check_model(settings: OxenSettings, model: str) -> str:
    if model != settings.model_name and model not in settings.model_aliases:
        raise ModelNotFoundError(model)
    return model


def model_object(settings: OxenSettings) -> dict[str, Any]:
    schema = request_schema()
    body = {
        "id": settings.model_name,
        "object": "model",
        "created": settings.model_created,
        "owned_by": "oxen",
        "display_name": settings.display_name,
        "description": settings.description,
        "summary": settings.summary,
        "model_type": "base",
        "endpoint": "/chat/completions",
        "capabilities": {"input": ["text"], "output": ["text"]},
        "pricing": {
            "method": "token",
            "input_cost_per_token": settings.input_cost_per_token,
            "output_cost_per_token": settings.output_cost_per_token,
        },
        "fine_tuning": None,
        "deployments": [],
        "developer": {"name": settings.developer_name, "logo": settings.developer_logo},
        "source_model": None,
        "image_url": None,
        "released_at": settings.released_at,
        "request_schema": schema,
        "json_request_schema": schema,
        "showcase": None,
    }
    return sort_keys(body) if settings.sort_keys == "all" else body


def _matches(settings: OxenSettings, developer_name: str | None, provider_name: str | None) -> bool:
    if developer_name is not None and developer_name.lower() != settings.developer_name.lower():
        return False
    return provider_name is None or provider_name.lower() == "oxen"


def _json(body: Any) -> Response:
    return Response(dumps(body), media_type="application/json")


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])

    @api.post(CHAT_PATH)
    async def chat_completions(request: Request, ctx: Ctx) -> Response:
        settings = ctx.settings.providers.oxen
        raw = await read_json_object(request, ctx.settings.limits.max_body_bytes)
        precheck(raw)
        body = parse_body(ChatCompletionRequest, raw)
        model = check_model(settings, body.model)
        completion_id = new_id()
        prepared = ctx.service.prepare(body.to_core(completion_id))
        created = now()
        if body.stream:
            events = await open_stream(ctx, prepared)
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return sse_response(
                encode_stream(
                    events,
                    settings,
                    completion_id=completion_id,
                    created=created,
                    model=model,
                    include_usage=include_usage,
                )
            )
        result = await complete(ctx, request, prepared)
        return _json(completion_body(result, settings, completion_id=completion_id, created=created, model=model))

    @api.get(MODELS_PATH)
    async def list_models(
        ctx: Ctx, developer_name: str | None = None, provider_name: str | None = None, action: str | None = None
    ) -> Response:
        settings = ctx.settings.providers.oxen
        # base models support no fine-tune action
        keep = _matches(settings, developer_name, provider_name) and action is None
        return _json({"object": "list", "data": [model_object(settings)] if keep else []})

    @api.get(MODELS_PATH + "/search")
    async def search_models(ctx: Ctx, search: str = "") -> Response:
        settings = ctx.settings.providers.oxen
        term = search.lower()
        hit = term in settings.model_name.lower() or term in settings.display_name.lower()
        return _json({"object": "list", "data": [model_object(settings)] if hit else []})

    @api.get(MODELS_PATH + "/{model_id}")
    async def get_model(model_id: str, ctx: Ctx, deployment_status: Literal["live"] | None = None) -> Response:
        settings = ctx.settings.providers.oxen
        check_model(settings, model_id)
        return _json(model_object(settings))

    return api


PROVIDER = Provider(
    name=NAME,
    enabled=lambda ctx: ctx.settings.providers.oxen.enabled,
    router=router,
    paths=f"{CHAT_PATH}, {MODELS_PATH}",
    prefixes=lambda ctx: (BASE,),
    render_error=render_error,
)
