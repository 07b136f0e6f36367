"""Oxen's paths under ``/api/ai``, with Bearer auth."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response

from routes.oxen import ids
from routes.oxen.errors import render_error
from routes.oxen.models import matches, model_object
from routes.oxen.request import ChatCompletionRequest, precheck
from routes.oxen.response import completion_body
from routes.oxen.settings import OxenSettings, section
from routes.oxen.stream import encode_stream
from routes.shared.run import Ctx, complete, open_stream, parse_body
from server.context import ServerContext
from server.errors import (
    ModelNotFoundError,
)
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import dumps
from server.http.routing import error_route_class
from server.http.sse import sse_response

BASE = "/api/ai"

CHAT_PATH = BASE + "/chat/completions"

MODELS_PATH = BASE + "/models"


async def authenticate(request: Request, ctx: Ctx) -> None:
    keys = ctx.keys
    require_key(keys, bearer_token(request), missing="Missing API key.", invalid="Invalid API key.")


def check_model(settings: OxenSettings, model: str) -> str:
    if model != settings.model_name and model not in settings.model_aliases:
        raise ModelNotFoundError(model)
    return model


def _json(body: Any) -> Response:
    return Response(dumps(body), media_type="application/json")


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    return (BASE,)


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])

    @api.post(CHAT_PATH)
    async def chat_completions(request: Request, ctx: Ctx) -> Response:
        settings = section(ctx)
        raw = await read_json_object(request, ctx.settings.limits.max_body_bytes)
        precheck(raw)
        body = parse_body(ChatCompletionRequest, raw)
        model = check_model(settings, body.model)
        completion_id = ids.new_id()
        prepared = await ctx.service.prepare(body.to_core(completion_id))
        created = ids.now()
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
        settings = section(ctx)
        # base models support no fine-tune action
        keep = matches(settings, developer_name, provider_name) and action is None
        return _json({"object": "list", "data": [model_object(settings)] if keep else []})

    @api.get(MODELS_PATH + "/search")
    async def search_models(ctx: Ctx, search: str = "") -> Response:
        settings = section(ctx)
        term = search.lower()
        hit = term in settings.model_name.lower() or term in settings.display_name.lower()
        return _json({"object": "list", "data": [model_object(settings)] if hit else []})

    @api.get(MODELS_PATH + "/{model_id}")
    async def get_model(model_id: str, ctx: Ctx, deployment_status: Literal["live"] | None = None) -> Response:
        settings = section(ctx)
        check_model(settings, model_id)
        return _json(model_object(settings))

    return api
