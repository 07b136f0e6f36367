"""E2E's paths: ``POST /project/{p-id}/genai/<model>/v1/chat/completions``, ``POST .../v1/completions`` (vLLM's legacy
completions) and ``GET .../v1/models``, Bearer auth (the TIR auth token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from routes.e2e import ids
from routes.e2e.errors import render_error, stream_error
from routes.e2e.request import check_model, read_body, read_request
from routes.e2e.response import shape
from routes.e2e.settings import section
from routes.openai.response import model_card
from routes.shared.completion_request import CompletionRequest
from routes.shared.run import Ctx
from routes.shared.vllm_chat import respond_chat
from routes.shared.vllm_completion import respond
from server.context import ServerContext
from server.http.auth import bearer_token, require_key
from server.http.jsonio import dumps
from server.http.routing import error_route_class

__all__ = ["prefixes", "render_error", "router"]

PREFIX = "/project/{project}/genai/{model_path}/v1"
CHAT_PATH = "/chat/completions"
COMPLETIONS_PATH = "/completions"
MODELS_PATH = "/models"


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    return ("/project",)


def sdk_base(ctx: ServerContext) -> str:
    """The `openai` SDK's ``base_url`` path, for a project called ``default`` (any project name is served)."""
    return PREFIX.replace("{project}", "default").replace("{model_path}", section(ctx).model_name)


async def authenticate(request: Request, ctx: Ctx) -> None:
    """``Authorization: Bearer <TIR auth token>``."""
    require_key(
        ctx.keys,
        bearer_token(request),
        missing="Unauthorized: missing auth token.",
        invalid="Unauthorized: invalid auth token.",
    )


def router(ctx: ServerContext) -> APIRouter:
    prefix = PREFIX.replace("{model_path}", section(ctx).model_name)
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])

    @api.post(prefix + CHAT_PATH)
    async def chat_completions(project: str, request: Request, ctx: Ctx) -> Response:
        # `?project_id=` (documented since 2026) is accepted and ignored, as the path already names the project.
        s = section(ctx)
        body = await read_request(request, ctx.settings.limits.max_body_bytes)
        check_model(s, body.model)
        return await respond_chat(
            ctx, request, body, shape(s), new_id=ids.new_id, now=ids.now, stream_error=stream_error(s)
        )

    @api.post(prefix + COMPLETIONS_PATH)
    async def completions(project: str, request: Request, ctx: Ctx) -> Response:
        s = section(ctx)
        body = await read_body(request, ctx.settings.limits.max_body_bytes, CompletionRequest)
        body.check()
        check_model(s, body.model)
        completion_id, core_id = body.answer_ids("cmpl", ids.new_completion_id)
        return await respond(
            ctx,
            request,
            body,
            shape(s),
            completion_id=completion_id,
            core_id=core_id,
            created=int(ids.now()),
            stream_error=stream_error(s),
        )

    if section(ctx).models_route:

        @api.get(prefix + MODELS_PATH)
        async def list_models(project: str, ctx: Ctx) -> Response:
            s = section(ctx)
            card = model_card(ctx, s.model_name, owned_by=s.owned_by)
            return Response(dumps({"object": "list", "data": [card]}), media_type="application/json")

    return api
