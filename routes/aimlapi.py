"""AI/ML API (``api.aimlapi.com``): ``POST /v1/chat/completions`` and ``/chat/completions`` for
``openai/gpt-oss-120b``, plus the public ``GET /v1/models`` and ``GET /model/{id}``.

Its replies are OpenRouter-shaped (``gen-<unix>-<20 alnum>`` ids, ``reasoning_content``), its errors a flat
``{requestId, statusCode, timestamp, path, message}``. ``/v1/...`` is mounted only when
``providers.v1_owner == "aimlapi"``; the unprefixed paths are always ours.

paths -> auth -> request model + to_core() -> response builder -> stream encoder -> error renderer.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
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
    random_alnum,
    response_format_to_core,
    tool_choice_to_core,
    tools_to_core,
)
from server.context import ServerContext
from server.errors import (
    AuthenticationError,
    ContextLengthError,
    EngineUnavailableError,
    InternalError,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import SSE_DONE, dumps, sse_event
from server.http.routing import error_route_class
from server.http.sse import sse_response
from server.settings import AimlapiSettings
from server.types import ChatRequest, ChatResult, Delta, Event, Finish, SamplingOptions, ToolCallDelta, Usage

NAME = "aimlapi"
V1_CHAT_PATH = "/v1/chat/completions"
CHAT_PATH = "/chat/completions"
V1_MODELS_PATH = "/v1/models"
MODEL_ALIASES_PATHS = ("/models", "/api/v1/models")
MODEL_PATH = "/model/{model_id:path}"

EXPOSED_HEADERS = "x-inference-id, x-client-request-id, x-aimlapi-credits-used, x-aimlapi-usd-spent"
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
NANOID = string.ascii_letters + string.digits + "_-"  # nanoid's url-safe alphabet

AUTH_MESSAGE = (
    "This request requires a valid API key. You can create a new API key on the Billing page: "
    "https://aimlapi.com/app/keys"
)
BODY_INVALID = "Body validation error!"


def now() -> float:
    """The clock (tests pin it)."""
    return time.time()


def new_id(created: int) -> str:
    """OpenRouter's generation id, ``gen-<unix>-<20 alnum>`` (tests pin it)."""
    return f"gen-{created}-{random_alnum(20)}"


def new_request_id() -> str:
    """A 21-character nanoid, as in AI/ML API's error ``requestId``."""
    return "".join(secrets.choice(NANOID) for _ in range(21))


def new_inference_id() -> str:
    return str(uuid.uuid4())


def _settings(ctx: ServerContext) -> AimlapiSettings:
    return ctx.settings.providers.aimlapi


# ---- error renderer ---------------------------------------------------------------------------------


def error_message(exc: ServerError, settings: AimlapiSettings) -> str:
    """AI/ML API's catalogue message for a typed error."""
    if isinstance(exc, AuthenticationError):
        return AUTH_MESSAGE
    if isinstance(exc, ContextLengthError):
        return exc.message  # INFERRED: the upstream message passes through with 400
    if isinstance(exc, InvalidRequestError):
        return f"{BODY_INVALID} {exc.message}" if settings.validation_detail_in_message else BODY_INVALID
    if isinstance(exc, RateLimitError):
        return "Too Many Requests"
    if isinstance(exc, EngineUnavailableError):
        return "Service unavailable"
    if isinstance(exc, InternalError) or exc.status >= 500:
        return "Internal server error"
    return exc.message


def error_body(exc: ServerError, path: str, settings: AimlapiSettings) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(now(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "requestId": new_request_id(),
        "statusCode": exc.status,
        "timestamp": stamp,
        "path": path,
        "message": error_message(exc, settings),
    }


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    settings = _settings(request.app.state.ctx) if request is not None else AimlapiSettings()
    path = request.url.path if request is not None else CHAT_PATH
    headers = trace_headers(request)
    if isinstance(exc, RateLimitError):
        headers["Retry-After"] = str(exc.retry_after)
    return Response(
        dumps(error_body(exc, path, settings)), status_code=exc.status, media_type="application/json", headers=headers
    )


def trace_headers(request: Request | None) -> dict[str, str]:
    """``x-inference-id`` always; ``x-client-request-id`` echoed when valid (invalid values are dropped)."""
    headers = {"x-inference-id": new_inference_id(), "Access-Control-Expose-Headers": EXPOSED_HEADERS}
    client_id = request.headers.get("x-client-request-id") if request is not None else None
    if client_id is not None and CLIENT_REQUEST_ID.match(client_id):
        headers["x-client-request-id"] = client_id
    return headers


# ---- auth -------------------------------------------------------------------------------------------


def authenticate(request: Request, ctx: Ctx) -> None:
    keys = ctx.keys
    require_key(keys, bearer_token(request), missing=AUTH_MESSAGE, invalid=AUTH_MESSAGE)


# ---- request model ----------------------------------------------------------------------------------

INT64 = 2**63 - 1


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool


class ChatCompletionRequest(BaseModel):
    """The documented parameters and ranges of ``openai/gpt-oss-120b`` (unknown fields are stripped)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=256)
    messages: list[MessageIn] = Field(min_length=1, max_length=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64)
    max_tokens: int | None = Field(None, ge=1, le=INT64)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0.01, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=1, le=INT64)
    min_p: float | None = Field(None, ge=0.001, le=0.999, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    repetition_penalty: float | None = Field(None, gt=0.0, le=100.0, allow_inf_nan=False)
    top_a: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)  # accepted; no engine equivalent
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    logit_bias: dict[str, float] | None = Field(None, max_length=1024)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    prediction: dict[str, Any] | None = None  # accepted; speculative hints do not change the answer
    response_format: dict[str, Any] | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    echo: bool | None = None
    provider: str | None = Field(None, max_length=64)

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
        tools = tools_to_core(self.tools)
        sampling = SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            repetition_penalty=self.repetition_penalty,
            logit_bias={int(k): v for k, v in self.logit_bias.items()} if self.logit_bias else None,
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


def check_model(settings: AimlapiSettings, model: str) -> str:
    if model != settings.model_id:
        if settings.unknown_model_status == 404:
            raise ModelNotFoundError(model)
        raise InvalidRequestError(
            f"Invalid enum value. Expected '{settings.model_id}', received '{model}'", param="model"
        )
    return model


# ---- response builder -------------------------------------------------------------------------------


def _js_number(value: float) -> int | float:
    """Numbers as JavaScript prints them (``2480``, not ``2480.0``)."""
    return int(value) if float(value).is_integer() else value


def cost(usage: Usage, settings: AimlapiSettings) -> tuple[int | float, int | float]:
    """(credits_used, usd_spent) at the configured prices."""
    usd = (
        usage.prompt_tokens * settings.usd_per_million_prompt_tokens
        + usage.completion_tokens * settings.usd_per_million_completion_tokens
    ) / 1_000_000
    return _js_number(round(usd * settings.credits_per_usd)), _js_number(round(usd, 10))


def meta_body(usage: Usage, settings: AimlapiSettings) -> dict[str, Any]:
    credits, usd = cost(usage, settings)
    return {"usage": {"credits_used": credits, "usd_spent": usd}}


def finish_reason(reason: str) -> str:
    return reason if reason in ("stop", "length", "tool_calls") else "stop"


def completion_body(
    result: ChatResult, *, completion_id: str, created: int, model: str, settings: AimlapiSettings
) -> dict[str, Any]:
    content = result.content
    if content is None and settings.tool_call_content == "empty":
        content = ""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "reasoning_content": result.reasoning,
        "refusal": None,
    }
    if result.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in result.tool_calls
        ]
    usage = result.usage
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion",
        "choices": [
            {"index": 0, "finish_reason": finish_reason(result.finish_reason), "logprobs": None, "message": message}
        ],
        "created": created,
        "model": model,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
            "prompt_tokens_details": None,
        },
    }
    if settings.include_meta:
        body["meta"] = meta_body(usage, settings)
    return body


# ---- stream encoder ---------------------------------------------------------------------------------


async def encode_stream(
    events: AsyncIterator[Event],
    *,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    settings: AimlapiSettings,
    path: str,
) -> AsyncIterator[bytes]:
    """OpenAI chunks with ``usage: null``, ``reasoning_content`` deltas, a finish chunk, then a
    ``choices: []`` usage chunk (with ``meta``) and ``[DONE]``."""
    role_sent = False

    def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None, **extra: Any) -> bytes:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            "usage": usage,
        }
        body.update(extra)
        return sse_event(body)

    def delta_chunk(fields: dict[str, Any], reason: str | None = None) -> bytes:
        nonlocal role_sent
        delta: dict[str, Any] = {}
        if settings.stream_role_every_chunk or not role_sent:
            delta["role"] = "assistant"
            role_sent = True
        delta["content"] = fields.pop("content", "")
        delta.update(fields)
        return chunk([{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}])

    def call_body(part: ToolCallDelta) -> dict[str, Any]:
        if part.id is None:
            return {"index": part.index, "function": {"arguments": part.arguments}}
        return {
            "index": part.index,
            "id": part.id,
            "function": {"arguments": part.arguments, "name": part.name},
            "type": "function",
        }

    pending: ToolCallDelta | None = None  # a whole call being collected (stream_whole_tool_calls)
    try:
        async for event in events:
            if isinstance(event, Delta):
                if event.reasoning:
                    yield delta_chunk({"reasoning_content": event.reasoning})
                if event.content:
                    yield delta_chunk({"content": event.content})
                for part in event.tool_calls:
                    if not settings.stream_whole_tool_calls:
                        yield delta_chunk({"tool_calls": [call_body(part)]})
                    elif pending is not None and part.id is None and part.index == pending.index:
                        pending.arguments += part.arguments
                    else:
                        if pending is not None:
                            yield delta_chunk({"tool_calls": [call_body(pending)]})
                        pending = ToolCallDelta(part.index, part.id, part.name, part.arguments)
                continue
            finish: Finish = event
            if pending is not None:
                yield delta_chunk({"tool_calls": [call_body(pending)]})
                pending = None
            if finish.reason == "error":
                message = finish.error or "Generation failed."
                if settings.stream_error_style == "envelope":
                    yield sse_event(error_body(InternalError(message), path, settings))
                else:  # OpenRouter's mid-stream error chunk (the OpenAI SDK raises APIError on it)
                    choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": "error"}
                    yield sse_event(
                        {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "error": {"code": "server_error", "message": message},
                            "choices": [{**choice, "logprobs": None}],
                        }
                    )
                break
            yield delta_chunk({}, finish_reason(finish.reason))
            if include_usage or settings.stream_usage_always:
                u = finish.usage
                usage = {
                    "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens,
                    "total_tokens": u.total_tokens,
                }
                extra = {"meta": meta_body(u, settings)} if settings.include_meta else {}
                yield chunk([], usage, **extra)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE


# ---- models -----------------------------------------------------------------------------------------

CAPABILITIES = ["streaming", "tools", "structured_output", "reasoning"]
MODALITIES = {"input": ["text"], "output": ["text"]}


def model_card(settings: AimlapiSettings, include: set[str]) -> dict[str, Any]:
    """One entry of ``GET /v1/models``: ``id, info, type, aliases, tags`` (+ what ``include`` asks for)."""
    card: dict[str, Any] = {
        "id": settings.model_id,
        "info": {
            "name": settings.model_name,
            "developer": settings.model_developer,
            "description": "OpenAI's open-weight reasoning model with configurable reasoning effort and tool use.",
            "releasedAt": "2025-08-05",
            "contextLength": settings.model_context_length,
        },
        "type": "openai/chat-completions",
        "aliases": [],
        "tags": ["playground:chat"],
    }
    every = "all" in include
    if every or "modalities" in include:
        card["modalities"] = MODALITIES
    if every or "capabilities" in include:
        card["capabilities"] = CAPABILITIES
    if every or "pricing" in include:
        card["pricing"] = {
            "kind": "fixed",
            "currency": "USD",
            "units": [
                {"name": "input", "per": "1M tokens", "price": _js_number(settings.usd_per_million_prompt_tokens)},
                {"name": "output", "per": "1M tokens", "price": _js_number(settings.usd_per_million_completion_tokens)},
            ],
        }
    return card


def _values(raw: str | None) -> set[str]:
    return {v.strip().lower() for v in (raw or "").split(",") if v.strip()}


def matches(settings: AimlapiSettings, query: dict[str, str]) -> bool:
    """The documented filters: OR within one parameter, AND across parameters, case-insensitive."""
    facets = {
        "id": {settings.model_id.lower()},
        "type": {"openai/chat-completions"},
        "tags": {"playground:chat"},
        "modalities": set(MODALITIES["input"] + MODALITIES["output"]),
        "input_modalities": set(MODALITIES["input"]),
        "output_modalities": set(MODALITIES["output"]),
        "capabilities": set(CAPABILITIES),
    }
    for name, have in facets.items():
        wanted = _values(query.get(name))
        if wanted and not wanted & have:
            return False
    return True


def models_response(request: Request, settings: AimlapiSettings) -> Response:
    query = dict(request.query_params)
    data = [model_card(settings, _values(query.get("include")))] if matches(settings, query) else []
    body = dumps({"object": "list", "data": data})
    etag = 'W/"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'
    headers = {"ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


# ---- paths ------------------------------------------------------------------------------------------


async def chat_completions(request: Request, ctx: ServerContext) -> Response:
    settings = _settings(ctx)
    body = parse_body(ChatCompletionRequest, await read_json_object(request, ctx.settings.limits.max_body_bytes))
    model = check_model(settings, body.model)
    created = int(now())
    completion_id = new_id(created)
    prepared = ctx.service.prepare(body.to_core(completion_id))
    headers = trace_headers(request)
    if body.stream:
        events = await open_stream(ctx, prepared)
        stream = encode_stream(
            events,
            completion_id=completion_id,
            created=created,
            model=model,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
            settings=settings,
            path=request.url.path,
        )
        return sse_response(stream, headers=headers)
    result = await complete(ctx, request, prepared)
    payload = completion_body(result, completion_id=completion_id, created=created, model=model, settings=settings)
    credits, usd = cost(result.usage, settings)
    headers["x-aimlapi-credits-used"] = str(credits)
    headers["x-aimlapi-usd-spent"] = str(usd)
    return Response(dumps(payload), media_type="application/json", headers=headers)


def router(ctx: ServerContext) -> APIRouter:
    """``/chat/completions``, ``/model/{id}`` (and the ``/models`` aliases) always; ``/v1/chat/completions``
    and ``/v1/models`` only when ``providers.v1_owner`` is ``aimlapi``."""
    settings = _settings(ctx)
    owns_v1 = ctx.settings.providers.v1_owner == "aimlapi"
    api = APIRouter(route_class=error_route_class(render_error))
    auth = [Depends(authenticate)]

    async def chat(request: Request, ctx: Ctx) -> Response:
        return await chat_completions(request, ctx)

    async def list_models(request: Request, ctx: Ctx) -> Response:
        return models_response(request, _settings(ctx))

    async def get_model(model_id: str, ctx: Ctx) -> Response:
        s = _settings(ctx)
        if model_id != s.model_id:
            raise NotFoundError(f"Model '{model_id}' not found")
        every = {"all"}
        return Response(dumps({"object": "model", "data": model_card(s, every)}), media_type="application/json")

    chat_paths = [V1_CHAT_PATH, CHAT_PATH] if owns_v1 else [CHAT_PATH]
    for path in chat_paths:
        api.add_api_route(path, chat, methods=["POST"], dependencies=auth, include_in_schema=path == CHAT_PATH)
    model_paths = ([V1_MODELS_PATH] if owns_v1 else []) + (list(MODEL_ALIASES_PATHS) if settings.models_aliases else [])
    for path in model_paths:
        api.add_api_route(path, list_models, methods=["GET"], include_in_schema=False)
    api.add_api_route(MODEL_PATH, get_model, methods=["GET"], include_in_schema=False)
    return api


PROVIDER = Provider(
    name=NAME,
    enabled=lambda ctx: ctx.settings.providers.aimlapi.enabled,
    router=router,
    paths=f"{CHAT_PATH}, {MODEL_PATH} (+ {V1_CHAT_PATH}, {V1_MODELS_PATH} when v1_owner=aimlapi)",
    prefixes=lambda ctx: (CHAT_PATH, "/model", *MODEL_ALIASES_PATHS)
    + (("/v1",) if ctx.settings.providers.v1_owner == "aimlapi" else ()),
    render_error=render_error,
)
