"""dat1's two paths: invoke-chat (``X-API-Key``) and the open-ai route (Bearer), onto the same llama-server."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from routes.dat1 import ids
from routes.dat1.constraint import prepare
from routes.dat1.errors import JSON_TYPE, ParseError, render_error
from routes.dat1.request import parse_request
from routes.dat1.response import completion_body
from routes.dat1.settings import section
from routes.dat1.stream import StreamOptions, encode_stream
from routes.shared.run import Ctx, complete_choices, open_choices
from server.choices import check_count, replicate
from server.context import ServerContext
from server.errors import (
    InvalidRequestError,
    ModelNotFoundError,
)
from server.http.auth import bearer_token, header_value, require_key
from server.http.body import read_json_object
from server.http.jsonio import dumps
from server.http.routing import error_route_class
from server.http.sse import sse_response

BASE = "/api/v1/collection"

OPENAI_PATH = BASE + "/open-ai/chat/completions"

INVALID_KEY = "Invalid API Key"  # llama-server's 401 text; dat1's own gateway bodies are UNKNOWN


async def authenticate_key(request: Request, ctx: Ctx) -> None:
    """invoke-chat: ``X-API-Key: <key>``."""
    keys = ctx.keys
    require_key(keys, header_value(request, "x-api-key"), missing=INVALID_KEY, invalid=INVALID_KEY)


async def authenticate_bearer(request: Request, ctx: Ctx) -> None:
    """The open-ai route: ``Authorization: Bearer <key>``."""
    keys = ctx.keys
    require_key(keys, bearer_token(request), missing=INVALID_KEY, invalid=INVALID_KEY)


async def chat(request: Request, ctx: ServerContext, *, openai_route: bool) -> Response:
    settings = section(ctx)
    try:
        body = await read_json_object(request, ctx.settings.limits.max_body_bytes)
    except InvalidRequestError as exc:  # not JSON, or not an object
        raise ParseError(exc.message) from None
    if openai_route:
        # llama-server serves whatever `model` names; a configured list makes the gateway refuse other names
        name = body.get("model")
        if settings.openai_models and isinstance(name, str) and name not in settings.openai_models:
            raise ModelNotFoundError(name)
    messages = body.get("messages")
    if isinstance(messages, list) and len(messages) > ctx.settings.limits.max_messages:  # before parsing them
        raise ParseError(f"At most {ctx.settings.limits.max_messages} messages are allowed.")
    completion_id = ids.new_id()
    parsed = parse_request(body, settings, request_id=completion_id)
    check_count(parsed.n, ctx.settings.limits)
    prepared = await prepare(ctx, parsed.chat)
    choices = replicate(prepared, parsed.n)
    timings = settings.openai_route_timings or not openai_route
    if parsed.stream:
        events = await open_choices(ctx, choices)
        opts = StreamOptions(
            completion_id=completion_id,
            model=parsed.model,
            prompt_tokens=len(prepared.prompt_token_ids),
            n_probs=parsed.n_probs,
            raw_reasoning=parsed.raw_reasoning,
            timings=timings,
            timings_per_token=parsed.timings_per_token,
            include_usage=parsed.include_usage,
        )
        # llama-server's content type has no charset parameter
        headers = {"Content-Type": "text/event-stream"}
        return sse_response(encode_stream(events, settings=settings, opts=opts, n=parsed.n), headers=headers)
    answer = await complete_choices(ctx, request, choices)
    payload = completion_body(
        answer.results,
        cache_n=answer.results[0].usage.cached_tokens,
        completion_id=completion_id,
        model=parsed.model,
        settings=settings,
        n_probs=parsed.n_probs,
        raw_reasoning=parsed.raw_reasoning,
        timings=timings,
    )
    return Response(dumps(payload), media_type=JSON_TYPE)


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    return (BASE,)


def sdk_base(ctx: ServerContext) -> str:
    """The `openai` SDK's ``base_url`` path on the open-ai route (it appends ``/chat/completions``)."""
    return OPENAI_PATH.removesuffix("/chat/completions")


def router(ctx: ServerContext) -> APIRouter:
    settings = section(ctx)
    api = APIRouter(route_class=error_route_class(render_error))

    @api.post(f"{BASE}/{settings.collection}/invoke-chat", dependencies=[Depends(authenticate_key)])
    async def invoke_chat(request: Request, ctx: Ctx) -> Response:
        return await chat(request, ctx, openai_route=False)

    if settings.openai_route:

        @api.post(OPENAI_PATH, dependencies=[Depends(authenticate_bearer)])
        async def openai_chat_completions(request: Request, ctx: Ctx) -> Response:
            return await chat(request, ctx, openai_route=True)

    return api
