"""The OpenAI route's paths: ``POST /v1/chat/completions``, ``POST /v1/completions`` (vLLM's legacy completions: a raw
prompt), ``GET /v1/models``, ``GET /v1/models/{id}``, mounted at
``/v1`` unless another wire API owns that prefix, and always under ``/openai/v1``. Bearer auth."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from routes.openai import ids
from routes.openai.errors import render_error, stream_error
from routes.openai.request import ChatCompletionRequest
from routes.openai.response import check_model, model_card, shape
from routes.openai.settings import NAME, section
from routes.shared.completion_request import CompletionRequest
from routes.shared.run import Ctx, parse_body
from routes.shared.vllm_chat import respond_chat
from routes.shared.vllm_completion import respond
from server.context import ServerContext
from server.http.auth import bearer_token, require_key
from server.http.body import read_json_object
from server.http.jsonio import dumps
from server.http.routing import error_route_class

__all__ = ["prefixes", "render_error", "router"]

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS_PATH = "/v1/models"


def owns_v1(ctx: ServerContext) -> bool:
    return ctx.settings.providers.v1_owner == NAME


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    return ("/openai/v1", "/v1") if owns_v1(ctx) else ("/openai/v1",)


def sdk_base(ctx: ServerContext) -> str:
    """The `openai` SDK's ``base_url`` path (it appends ``/chat/completions``)."""
    return "/v1" if owns_v1(ctx) else "/openai/v1"


async def authenticate(request: Request, ctx: Ctx) -> None:
    require_key(
        ctx.keys,
        bearer_token(request),
        missing="You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        invalid="Incorrect API key provided.",
    )


def router(ctx: ServerContext) -> APIRouter:
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])
    for prefix in ["", "/openai"] if owns_v1(ctx) else ["/openai"]:
        _mount(api, prefix)
    return api


def _mount(api: APIRouter, prefix: str) -> None:
    @api.post(prefix + CHAT_PATH, include_in_schema=not prefix)
    async def chat_completions(request: Request, ctx: Ctx) -> Response:
        body = parse_body(ChatCompletionRequest, await read_json_object(request, ctx.settings.limits.max_body_bytes))
        model = check_model(ctx, body.model)
        return await respond_chat(
            ctx, request, body, shape(model), new_id=ids.new_id, now=ids.now, stream_error=stream_error
        )

    @api.post(prefix + COMPLETIONS_PATH, include_in_schema=not prefix)
    async def completions(request: Request, ctx: Ctx) -> Response:
        body = parse_body(CompletionRequest, await read_json_object(request, ctx.settings.limits.max_body_bytes))
        body.check()
        model = check_model(ctx, body.model)
        completion_id, core_id = body.answer_ids("cmpl", ids.new_completion_id)
        return await respond(
            ctx,
            request,
            body,
            shape(model),
            completion_id=completion_id,
            core_id=core_id,
            created=int(ids.now()),
            stream_error=stream_error,
            harmony_output=section(ctx).completions_harmony_output,
        )

    @api.get(prefix + MODELS_PATH, include_in_schema=not prefix)
    async def list_models(ctx: Ctx) -> Response:
        name = ctx.settings.engine.served_model_name
        return Response(dumps({"object": "list", "data": [model_card(ctx, name)]}), media_type="application/json")

    @api.get(prefix + MODELS_PATH + "/{model_id:path}", include_in_schema=not prefix)
    async def get_model(model_id: str, ctx: Ctx) -> Response:
        return Response(dumps(model_card(ctx, check_model(ctx, model_id))), media_type="application/json")
