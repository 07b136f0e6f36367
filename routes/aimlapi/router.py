"""AI/ML API's paths: ``/chat/completions`` (and ``/v1/...`` when it owns ``/v1``), the model catalogue."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from routes.aimlapi import ids
from routes.aimlapi.errors import AUTH_MESSAGE, render_error, trace_headers
from routes.aimlapi.models import model_card, models_response
from routes.aimlapi.request import ChatCompletionRequest, check_model
from routes.aimlapi.response import completion_body, cost
from routes.aimlapi.settings import NAME, section
from routes.aimlapi.stream import encode_stream
from routes.shared.run import Ctx, complete, open_stream, parse_body
from server.context import ServerContext
from server.errors import (
    NotFoundError,
)
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import dumps
from server.http.routing import error_route_class
from server.http.sse import sse_response

V1_CHAT_PATH = "/v1/chat/completions"

CHAT_PATH = "/chat/completions"

V1_MODELS_PATH = "/v1/models"

MODEL_ALIASES_PATHS = ("/models", "/api/v1/models")

MODEL_PATH = "/model/{model_id:path}"


async def authenticate(request: Request, ctx: Ctx) -> None:
    keys = ctx.keys
    require_key(keys, bearer_token(request), missing=AUTH_MESSAGE, invalid=AUTH_MESSAGE)


async def chat_completions(request: Request, ctx: ServerContext) -> Response:
    settings = section(ctx)
    body = parse_body(ChatCompletionRequest, await read_json_object(request, ctx.settings.limits.max_body_bytes))
    model = check_model(settings, body.model)
    created = int(ids.now())
    completion_id = ids.new_id(created)
    prepared = await ctx.service.prepare(body.to_core(completion_id))
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


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    owns_v1 = ("/v1",) if ctx.settings.providers.v1_owner == NAME else ()
    return (CHAT_PATH, "/model", *MODEL_ALIASES_PATHS, *owns_v1)


def sdk_base(ctx: ServerContext) -> str:
    """The `openai` SDK's ``base_url`` path: the root (it appends ``/chat/completions``)."""
    return ""


def router(ctx: ServerContext) -> APIRouter:
    """``/chat/completions``, ``/model/{id}`` (and the ``/models`` aliases) always; ``/v1/chat/completions``
    and ``/v1/models`` only when ``providers.v1_owner`` is ``aimlapi``."""
    settings = section(ctx)
    owns_v1 = ctx.settings.providers.v1_owner == NAME
    api = APIRouter(route_class=error_route_class(render_error))
    auth = [Depends(authenticate)]

    async def chat(request: Request, ctx: Ctx) -> Response:
        return await chat_completions(request, ctx)

    async def list_models(request: Request, ctx: Ctx) -> Response:
        return models_response(request, section(ctx))

    async def get_model(model_id: str, ctx: Ctx) -> Response:
        s = section(ctx)
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
