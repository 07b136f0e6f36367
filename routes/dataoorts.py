"""Dataoorts serverless (``POST /api/v1``): a Cloudflare Workers AI envelope around one model.

The body wraps Cloudflare's input, ``{"model": "openai/gpt-oss-120b", "data": {...}}``, with Cloudflare's
parameter ranges. The answer is ``{errors, messages, result: {response, tool_calls, usage}, success}``
(keys alphabetical, as documented). Streaming is undocumented; the inferred form is Cloudflare's classic
``data: {"response": "..."}`` events, a final ``{"response": "", "usage": {...}}`` and ``data: [DONE]``.
Errors use Cloudflare's envelope ``{"result", "success": false, "errors": [{"code", "message"}], "messages"}``.

paths -> auth -> request model + to_core() -> response builder -> stream encoder -> error renderer.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from routes import Provider
from routes.common import (
    Ctx,
    FunctionDef,
    MessageIn,
    ToolDef,
    complete,
    messages_to_core,
    open_stream,
    parse_body,
    random_alnum,
)
from server.context import ServerContext
from server.errors import (
    AuthenticationError,
    ContextLengthError,
    EngineUnavailableError,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
)
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import SSE_DONE, dumps, sse_event
from server.http.routing import error_route_class
from server.http.sse import sse_response
from server.service import add_tool_call_parts
from server.settings import DataoortsSettings
from server.types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    Delta,
    Event,
    Finish,
    FunctionTool,
    ResponseFormat,
    SamplingOptions,
    ToolCall,
    ToolChoice,
)

NAME = "dataoorts"
CHAT_PATH = "/api/v1"


def new_id() -> str:
    """Id of a chat.completion ``result`` (only with ``result_shape: chat_completion``)."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


# ---- error renderer ---------------------------------------------------------------------------------
# Cloudflare Workers AI codes: 10000 auth, 5007 no such model, 5004 invalid data, 3003 incomplete request,
# 3006 request too large, 3040 out of capacity, 8007 upstream (context overflow), 3050 retries exhausted.


def _error_code(exc: ServerError) -> int:
    if isinstance(exc, AuthenticationError):
        return 10000
    if isinstance(exc, ModelNotFoundError):
        return 5007
    if isinstance(exc, ContextLengthError):
        return 8007
    if isinstance(exc, PayloadTooLargeError):
        return 3006
    if isinstance(exc, RateLimitError):
        return 3040
    if isinstance(exc, MethodNotAllowedError):
        return 7001
    if isinstance(exc, NotFoundError):
        return 7000
    if isinstance(exc, InvalidRequestError):
        return 5004
    if isinstance(exc, EngineUnavailableError):
        return 3050
    return 3043


def _error_message(exc: ServerError) -> str:
    if isinstance(exc, AuthenticationError):
        return "Authentication error"
    if isinstance(exc, ModelNotFoundError):
        return f"No such model {exc.model} or task"
    if isinstance(exc, ContextLengthError):
        upstream = {"object": "error", "message": exc.message, "type": "BadRequestError", "param": None, "code": 400}
        return f"AiError: AiError: {dumps(upstream).decode()} ({uuid.uuid4()})"
    if isinstance(exc, InvalidRequestError) and exc.param and exc.param not in exc.message:
        return f"{exc.message} (at '{exc.param}')"
    return exc.message


def error_body(exc: ServerError, settings: DataoortsSettings) -> dict[str, Any]:
    result: dict[str, Any] | None = {} if isinstance(exc, ContextLengthError) else None
    body = {
        "result": result,
        "success": False,
        "errors": [{"code": _error_code(exc), "message": _error_message(exc)}],
        "messages": [],
    }
    return dict(sorted(body.items())) if settings.error_key_order == "alphabetical" else body


def _status(exc: ServerError) -> int:
    # Cloudflare answers an unknown model with 400 (code 5007), not 404.
    return 400 if isinstance(exc, ModelNotFoundError) else exc.status


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    settings = _settings(request) if request is not None else DataoortsSettings()
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimitError) else None
    body = dumps(error_body(exc, settings))
    return Response(body, status_code=_status(exc), media_type="application/json", headers=headers)


def _settings(request: Request) -> DataoortsSettings:
    return request.app.state.ctx.settings.providers.dataoorts  # type: ignore[no-any-return]


# ---- auth -------------------------------------------------------------------------------------------


def authenticate(request: Request, ctx: Ctx) -> None:
    keys = ctx.keys
    require_key(keys, bearer_token(request), missing="Authentication error", invalid="Authentication error")


# ---- request model ----------------------------------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FlatTool(_Loose):
    """Cloudflare's short tool shape ``{name, description, parameters}``."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class JsonMode(_Loose):
    type: Literal["json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class Reasoning(_Loose):
    effort: Literal["low", "medium", "high"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class RunInput(_Loose):
    """Cloudflare's ``@cf/openai/gpt-oss-120b`` input: messages, prompt, or Responses-style ``input``."""

    messages: list[MessageIn] | None = Field(None, max_length=4096)
    prompt: str | None = Field(None, min_length=1)
    input: str | list[MessageIn] | None = None
    instructions: str | None = None
    reasoning: Reasoning | None = None
    functions: list[dict[str, Any]] | None = None
    tools: list[ToolDef | FlatTool] | None = Field(None, max_length=128)
    response_format: JsonMode | None = None
    raw: bool = False
    lora: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(None, ge=0.0, le=5.0, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0.001, le=1.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=1, le=50)
    seed: int | None = Field(None, ge=1, le=9_999_999_999)
    repetition_penalty: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)

    def _messages(self) -> list[ChatMessage]:
        if self.messages is not None:
            return messages_to_core(self.messages)
        if self.prompt is not None:
            return [ChatMessage(role="user", content=self.prompt)]
        if self.input is not None:
            system = [ChatMessage(role="system", content=self.instructions)] if self.instructions else []
            if isinstance(self.input, str):
                return [*system, ChatMessage(role="user", content=self.input)]
            return [*system, *messages_to_core(self.input)]
        raise InvalidRequestError("data must contain one of 'messages', 'prompt' or 'input'.", param="data.messages")

    def _tools(self) -> list[FunctionTool]:
        out: list[FunctionTool] = []
        for tool in self.tools or []:
            fn: FunctionDef | FlatTool = tool.function if isinstance(tool, ToolDef) else tool
            out.append(FunctionTool(fn.name, fn.description, fn.parameters))
        return out

    def _response_format(self) -> ResponseFormat:
        if self.response_format is None:
            return ResponseFormat()
        if self.response_format.type == "json_object":
            return ResponseFormat("json_object")
        spec = self.response_format.json_schema or {}
        # Cloudflare puts the schema itself in json_schema; accept OpenAI's {name, schema, strict} wrapper too.
        if isinstance(spec.get("schema"), dict):
            return ResponseFormat("json_schema", spec["schema"], spec.get("name"), bool(spec.get("strict")))
        return ResponseFormat("json_schema", spec)

    def to_core(self, request_id: str, settings: DataoortsSettings) -> ChatRequest:
        if self.raw:
            raise InvalidRequestError("raw mode is not supported for this model.", param="data.raw")
        if self.lora is not None:
            raise InvalidRequestError("LoRA adapters are not supported for this model.", param="data.lora")
        if self.functions:
            raise InvalidRequestError("Embedded functions are not supported for this model.", param="data.functions")
        tools = self._tools()
        temperature = self.temperature if self.temperature is not None else settings.default_temperature
        sampling = SamplingOptions(
            max_tokens=self.max_tokens,
            temperature=temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            # 0 is in Cloudflare's range but means nothing to the sampler (1.0 is neutral): treat it as unset.
            repetition_penalty=self.repetition_penalty or None,
        )
        return ChatRequest(
            messages=self._messages(),
            sampling=sampling,
            reasoning_effort=self.reasoning.effort if self.reasoning else None,
            tools=tools,
            tool_choice=ToolChoice("auto" if tools else "none"),
            response_format=self._response_format(),
            request_id=request_id,
        )


class RunRequest(_Loose):
    """Dataoorts' wrapper: one endpoint for every model, the model's input under ``data``."""

    model: str = Field(max_length=256)
    data: RunInput


# ---- response builder -------------------------------------------------------------------------------


def tool_calls_body(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls]


def result_body(result: ChatResult, settings: DataoortsSettings, model: str) -> dict[str, Any]:
    usage = result.usage
    if settings.result_shape == "chat_completion":
        message: dict[str, Any] = {"role": "assistant", "content": result.content, "refusal": None}
        if settings.include_reasoning:
            message["reasoning_content"] = result.reasoning
        if result.tool_calls:
            message["tool_calls"] = tool_calls_body(result.tool_calls)
        return {
            "id": new_id(),
            "object": "chat.completion",
            "created": now(),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason, "logprobs": None}],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
    body: dict[str, Any] = {}
    if settings.include_reasoning:
        body["reasoning"] = result.reasoning or ""
    body["response"] = result.content or ""
    body["tool_calls"] = tool_calls_body(result.tool_calls)
    body["usage"] = {
        "completion_tokens": usage.completion_tokens,
        "prompt_tokens": usage.prompt_tokens,
        "total_tokens": usage.total_tokens,
    }
    return body


def envelope(result: dict[str, Any]) -> dict[str, Any]:
    return {"errors": [], "messages": [], "result": result, "success": True}


# ---- stream encoder ---------------------------------------------------------------------------------


async def encode_stream(events: AsyncIterator[Event], settings: DataoortsSettings) -> AsyncIterator[bytes]:
    """Classic Workers AI stream: text events, whole tool calls, a usage event, ``[DONE]``."""

    def event(body: dict[str, Any]) -> bytes:
        if settings.stream_padding:
            body["p"] = random_alnum(1 + secrets.randbelow(32))
        return sse_event(body)

    calls: dict[int, ToolCall] = {}
    try:
        async for item in events:
            if isinstance(item, Delta):
                if item.reasoning and settings.include_reasoning:
                    yield event({"response": "", "reasoning": item.reasoning})
                if item.content:
                    yield event({"response": item.content})
                add_tool_call_parts(calls, item.tool_calls)
                continue
            finish: Finish = item
            if finish.reason == "error":
                exc = EngineUnavailableError(finish.error or "Generation failed.")
                yield sse_event(error_body(exc, settings))
                break
            if calls:
                yield event({"response": "", "tool_calls": tool_calls_body([calls[i] for i in sorted(calls)])})
            u = finish.usage
            usage = {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.total_tokens,
            }
            yield event({"response": "", "usage": usage})
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE


# ---- paths ------------------------------------------------------------------------------------------


def check_model(settings: DataoortsSettings, model: str) -> str:
    if model != settings.model_name and model not in settings.model_aliases:
        raise ModelNotFoundError(model)
    return model


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])

    @api.post(CHAT_PATH)
    async def run(request: Request, ctx: Ctx) -> Response:
        settings = ctx.settings.providers.dataoorts
        raw = await read_json_object(request, ctx.settings.limits.max_body_bytes)
        body = parse_body(RunRequest, raw)
        model = check_model(settings, body.model)
        prepared = ctx.service.prepare(
            body.data.to_core(uuid.uuid4().hex, settings), default_max_tokens=settings.default_max_tokens
        )
        if body.data.stream:
            return sse_response(encode_stream(await open_stream(ctx, prepared), settings))
        result = await complete(ctx, request, prepared)
        return Response(dumps(envelope(result_body(result, settings, model))), media_type="application/json")

    return api


PROVIDER = Provider(
    name=NAME,
    enabled=lambda ctx: ctx.settings.providers.dataoorts.enabled,
    router=router,
    paths=CHAT_PATH,
    prefixes=lambda ctx: (CHAT_PATH,),
    render_error=render_error,
)
