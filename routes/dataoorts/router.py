"""Dataoorts' one path, ``POST /api/v1``, with Bearer auth."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request, Response

from routes.dataoorts.errors import render_error
from routes.dataoorts.request import RunRequest
from routes.dataoorts.response import envelope, result_body
from routes.dataoorts.settings import DataoortsSettings, section
from routes.dataoorts.stream import encode_stream
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

CHAT_PATH = "/api/v1"


async def authenticate(request: Request, ctx: Ctx) -> None:
    keys = ctx.keys
    require_key(keys, bearer_token(request), missing="Authentication error", invalid="Authentication error")


def check_model(settings: DataoortsSettings, model: str) -> str:
    if model != settings.model_name and model not in settings.model_aliases:
        raise ModelNotFoundError(model)
    return model


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    return (CHAT_PATH,)


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])

    @api.post(CHAT_PATH)
    async def run(request: Request, ctx: Ctx) -> Response:
        settings = section(ctx)
        raw = await read_json_object(request, ctx.settings.limits.max_body_bytes)
        body = parse_body(RunRequest, raw)
        model = check_model(settings, body.model)
        prepared = await ctx.service.prepare(
            body.data.to_core(uuid.uuid4().hex, settings), default_max_tokens=settings.default_max_tokens
        )
        if body.data.stream:
            return sse_response(encode_stream(await open_stream(ctx, prepared), settings))
        result = await complete(ctx, request, prepared)
        return Response(dumps(envelope(result_body(result, settings, model))), media_type="application/json")

    return api
