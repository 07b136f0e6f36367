"""E2E Networks TIR GenAI API: vLLM's OpenAI server behind E2E's gateway, at
``/project/{p-id}/genai/gpt_oss_120b/v1/chat/completions`` (and ``.../v1/models``).

The request model is vLLM's (shared with ``routes/openai.py``). What differs from our plain ``/v1`` route is
explicit here: the vLLM era E2E documents (``reasoning_content`` and ``tool_calls: []`` by default, no
``choices[].token_ids``), ``chatcmpl-<dashed uuid>`` ids (the gateway's ``X-Request-Id``), ``usage`` without
unset keys in the stream (vLLM's ``exclude_unset``), and vLLM's error types with an integer ``code``.

paths -> auth -> request model + to_core() -> response builder -> stream encoder -> error renderer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from routes import Provider
from routes.common import Ctx, complete, open_stream, openai_logprobs
from routes.openai import ChatCompletionRequest, model_card, tool_call_delta, tool_calls_body, usage_body
from server.context import ServerContext
from server.errors import AuthenticationError, InvalidRequestError, ModelNotFoundError, ServerError
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import SSE_DONE, dumps, sse_event
from server.http.routing import error_route_class, validation_error
from server.http.sse import sse_response
from server.settings import E2ESettings
from server.types import ChatResult, Delta, Event, Finish

NAME = "e2e"
PREFIX = "/project/{project}/genai/{model_path}/v1"
CHAT_PATH = "/chat/completions"
MODELS_PATH = "/models"


def now() -> float:
    """The clock (tests pin it)."""
    return time.time()


def new_id() -> str:
    """vLLM's ``chatcmpl-`` + the gateway's ``X-Request-Id`` (a dashed uuid4) (tests pin it)."""
    return f"chatcmpl-{uuid.uuid4()}"


def _settings(ctx: ServerContext) -> E2ESettings:
    return ctx.settings.providers.e2e


# ---- error renderer ---------------------------------------------------------------------------------


class BodyError(InvalidRequestError):
    """The body failed FastAPI/pydantic validation (vLLM answers those with type ``Bad Request``)."""


def error_type(exc: ServerError) -> str:
    """vLLM's ``type``: its serving errors are named ``BadRequestError``/``NotFoundError``/
    ``InternalServerError``; validation and HTTP errors carry the status phrase."""
    if isinstance(exc, BodyError):
        return HTTPStatus.BAD_REQUEST.phrase
    if isinstance(exc, InvalidRequestError):
        return "BadRequestError"
    if isinstance(exc, ModelNotFoundError):
        return "NotFoundError"
    if exc.status == 500:
        return "InternalServerError"
    return HTTPStatus(exc.status).phrase


def error_body(exc: ServerError, settings: E2ESettings) -> dict[str, Any]:
    info = {"message": exc.message, "type": error_type(exc), "param": exc.param, "code": exc.status}
    if settings.error_style == "flat":
        return {"object": "error", **info}
    return {"error": info}


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    settings = _settings(request.app.state.ctx) if request is not None else E2ESettings()
    if isinstance(exc, AuthenticationError) and settings.auth_error == "envoy":
        text = "Jwt is missing" if exc.code == "missing_api_key" else "Jwt verification fails"
        return Response(text, status_code=401, media_type="text/plain")
    headers = {"Retry-After": "1"} if exc.status == 429 else None
    return Response(
        dumps(error_body(exc, settings)), status_code=exc.status, media_type="application/json", headers=headers
    )


# ---- auth -------------------------------------------------------------------------------------------


def authenticate(request: Request, ctx: Ctx) -> None:
    """``Authorization: Bearer <TIR auth token>``."""
    keys = ctx.keys
    require_key(
        keys,
        bearer_token(request),
        missing="Unauthorized: missing auth token.",
        invalid="Unauthorized: invalid auth token.",
    )


# ---- request model: vLLM's ChatCompletionRequest (routes/openai.py) ---------------------------------


async def read_request(request: Request, limit: int) -> ChatCompletionRequest:
    try:
        raw = await read_json_object(request, limit)
    except InvalidRequestError as exc:
        raise BodyError(exc.message, param=exc.param) from None
    try:
        return ChatCompletionRequest.model_validate(raw)
    except ValidationError as exc:
        err = validation_error(exc)
        raise BodyError(err.message, param=err.param) from None


def check_model(settings: E2ESettings, model: str | None) -> str:
    if model is not None and model != settings.model_name:
        raise ModelNotFoundError(model)
    return settings.model_name


# ---- response builder -------------------------------------------------------------------------------


def message_body(result: ChatResult, settings: E2ESettings) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.content,
        "refusal": None,
        "annotations": None,
        "audio": None,
        "function_call": None,
    }
    if result.tool_calls or settings.empty_tool_calls == "list":
        message["tool_calls"] = tool_calls_body(result)
    message[settings.reasoning_key] = result.reasoning
    return message


def completion_body(
    result: ChatResult, *, completion_id: str, created: int, settings: E2ESettings, return_token_ids: bool
) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": message_body(result, settings),
        "logprobs": openai_logprobs(result.logprobs),
        "finish_reason": result.finish_reason,
        "stop_reason": result.stop_reason,
    }
    if settings.choice_token_ids or return_token_ids:
        choice["token_ids"] = result.token_ids if return_token_ids else None
    usage = result.usage
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": settings.model_name,
        "choices": [choice],
        "service_tier": None,
        "system_fingerprint": settings.system_fingerprint,
        "usage": usage_body(usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens),
        "prompt_logprobs": None,
        "prompt_token_ids": result.prompt_token_ids if return_token_ids else None,
        "kv_transfer_params": None,
    }


# ---- stream encoder ---------------------------------------------------------------------------------


def stream_usage(prompt: int, completion: int) -> dict[str, int]:
    """vLLM serialises chunks with ``exclude_unset``: no ``prompt_tokens_details`` key here."""
    return {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion}


async def encode_stream(
    events: AsyncIterator[Event],
    *,
    completion_id: str,
    created: int,
    settings: E2ESettings,
    include_usage: bool,
    continuous_usage: bool,
    return_token_ids: bool,
    prompt_token_ids: list[int],
) -> AsyncIterator[bytes]:
    """vLLM's chunks: a role chunk, reasoning/content/tool-call deltas, a finish chunk with ``stop_reason``,
    a ``choices: []`` usage chunk only with ``include_usage``, then ``[DONE]``."""
    prompt = len(prompt_token_ids)
    generated = 0

    def chunk(choice: dict[str, Any] | None, **extra: Any) -> bytes:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": settings.model_name,
            "choices": [choice] if choice is not None else [],
        }
        body.update(extra)
        if include_usage and continuous_usage and choice is not None:
            body["usage"] = stream_usage(prompt, generated)
        return sse_event(body)

    def choice(delta: dict[str, Any], logprobs: Any = None, **extra: Any) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": None, **extra}

    first_extra = {"prompt_token_ids": prompt_token_ids} if return_token_ids else {}
    yield chunk(choice({"role": "assistant", "content": ""}), **first_extra)
    try:
        async for event in events:
            if isinstance(event, Delta):
                generated += len(event.token_ids)
                logprobs = openai_logprobs(event.logprobs)
                ids = {"token_ids": event.token_ids} if return_token_ids else {}
                if event.reasoning:
                    yield chunk(choice({settings.reasoning_key: event.reasoning}, logprobs, **ids))
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
                info = {
                    "message": finish.error or "Generation failed.",
                    "type": "InternalServerError",
                    "param": None,
                    "code": 500,
                }
                yield sse_event({"object": "error", **info} if settings.error_style == "flat" else {"error": info})
                break
            generated = finish.usage.completion_tokens
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
                yield chunk(None, usage=stream_usage(finish.usage.prompt_tokens, finish.usage.completion_tokens))
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    yield SSE_DONE


# ---- paths ------------------------------------------------------------------------------------------


def router(ctx: ServerContext) -> APIRouter:
    settings = _settings(ctx)
    prefix = PREFIX.replace("{model_path}", settings.model_name)
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])

    @api.post(prefix + CHAT_PATH)
    async def chat_completions(project: str, request: Request, ctx: Ctx) -> Response:
        # `?project_id=` (documented since 2026) is accepted and ignored, as the path already names the project.
        s = _settings(ctx)
        body = await read_request(request, ctx.settings.limits.max_body_bytes)
        check_model(s, body.model)
        completion_id = new_id()
        prepared = ctx.service.prepare(body.to_core(completion_id))
        created = int(now())
        if body.stream:
            events = await open_stream(ctx, prepared)
            options = body.stream_options
            return sse_response(
                encode_stream(
                    events,
                    completion_id=completion_id,
                    created=created,
                    settings=s,
                    include_usage=bool(options and options.include_usage),
                    continuous_usage=bool(options and options.continuous_usage_stats),
                    return_token_ids=body.return_token_ids,
                    prompt_token_ids=prepared.prompt_token_ids,
                )
            )
        result = await complete(ctx, request, prepared)
        payload = completion_body(
            result, completion_id=completion_id, created=created, settings=s, return_token_ids=body.return_token_ids
        )
        return Response(dumps(payload), media_type="application/json")

    if settings.models_route:

        @api.get(prefix + MODELS_PATH)
        async def list_models(project: str, ctx: Ctx) -> Response:
            s = _settings(ctx)
            card = {**model_card(ctx, s.model_name), "owned_by": s.owned_by}
            return Response(dumps({"object": "list", "data": [card]}), media_type="application/json")

    return api


PROVIDER = Provider(
    name=NAME,
    enabled=lambda ctx: ctx.settings.providers.e2e.enabled,
    router=router,
    paths=PREFIX.replace("{model_path}", "gpt_oss_120b") + CHAT_PATH,
    prefixes=lambda ctx: ("/project",),
    render_error=render_error,
)
