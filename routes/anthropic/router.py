"""The Messages API's paths: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` (``?beta=true`` as the
beta SDK and Claude Code send it, the same), and ``GET /v1/models`` and ``GET /v1/models/{id}`` claimed from their
usual owner for requests carrying ``anthropic-version`` or ``x-api-key`` (``claims``). The key comes in
``x-api-key`` or as a Bearer token; every answer carries ``request-id``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.routing import APIRoute

from routes.anthropic import ids, models, signatures
from routes.anthropic.blocks import to_core
from routes.anthropic.errors import render_error, request_id
from routes.anthropic.request import CountTokensRequest, MessagesRequest
from routes.anthropic.response import Event, Output
from routes.anthropic.settings import section
from routes.anthropic.stream import encode
from routes.provider import Claim
from routes.shared.run import Ctx, feed_all, open_stream, parse_body, until_disconnect
from server.context import ServerContext
from server.errors import ContextLengthError, NotFoundError
from server.http.auth import bearer_token, header_value, require_key
from server.http.body import read_json_object
from server.http.jsonio import dumps
from server.http.routing import Gate, error_route_class
from server.http.sse import sse_response
from server.service import PreparedRequest
from server.types import Event as CoreEvent
from server.types import Finish

__all__ = ["claims", "prefixes", "render_error", "router"]

MESSAGES_PATH = "/v1/messages"
MODELS_PATH = "/v1/models"
MODELS_CLAIM = Claim(paths=(MODELS_PATH,), headers=("anthropic-version", "x-api-key"))


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    return (MESSAGES_PATH,)


def sdk_base(ctx: ServerContext) -> str:
    """The `anthropic` SDK's ``base_url`` path: the root (it appends ``/v1/messages``)."""
    return ""


def claims(ctx: ServerContext) -> tuple[Claim, ...]:
    return (MODELS_CLAIM,)


async def authenticate(request: Request, ctx: Ctx) -> None:
    key = header_value(request, "x-api-key")
    require_key(
        ctx.keys,
        key if key is not None else bearer_token(request),
        missing="x-api-key header is required",
        invalid="invalid x-api-key",
    )


def route_class(gate: Gate | None = None) -> type[APIRoute]:
    """Routes in this API's envelope whose every answer carries ``request-id``."""

    class MessagesRoute(error_route_class(render_error, gate)):  # type: ignore[misc]
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def with_request_id(request: Request) -> Response:
                response = await handler(request)
                response.headers["request-id"] = request_id(request)
                return response

            return with_request_id

    return MessagesRoute


def json_response(value: Any) -> Response:
    return Response(dumps(value), media_type="application/json")


async def _folded(output: Output, events: AsyncIterator[CoreEvent]) -> dict[str, Any]:
    await feed_all(output, events)
    return output.message


async def _streamed(output: Output, events: AsyncIterator[CoreEvent]) -> AsyncIterator[Event]:
    try:
        for event in output.opening():
            yield event
        async for core in events:
            if isinstance(core, Finish):
                for event in output.close(core):
                    yield event
                return
            for event in output.feed(core):
                yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def router(ctx: ServerContext) -> APIRouter:
    settings = section(ctx)
    served = ctx.settings.engine.served_model_name
    open_thinking = signatures.opener(ctx.sealer)
    api = APIRouter(route_class=route_class(), dependencies=[Depends(authenticate)])

    def check_model(model: str) -> None:
        if not settings.accepts(model, served):
            raise NotFoundError(f"model: {model}", param="model")

    async def prepare(body: CountTokensRequest, message_id: str) -> PreparedRequest:
        # Claude Code asks for 32,000 output tokens whatever the context holds: what does not fit is clamped
        return await ctx.service.prepare(to_core(body, open_thinking, message_id), clamp_max_tokens=True)

    async def create(request: Request, ctx: Ctx) -> Response:
        body = parse_body(MessagesRequest, await read_json_object(request, ctx.settings.limits.max_body_bytes))
        check_model(body.model)
        message_id = ids.new_id("msg")
        prepared = await prepare(body, message_id)
        sealer = ctx.sealer
        output = Output(
            message_id,
            body.model,
            len(prepared.prompt_token_ids),
            seal=lambda text: signatures.sign(sealer, text),
            thinking=body.thinking_shown(),
        )
        events = await open_stream(ctx, prepared)
        if body.stream:
            return sse_response(encode(_streamed(output, events)))
        return json_response(await until_disconnect(request, _folded(output, events)))

    async def count_tokens(request: Request, ctx: Ctx) -> Response:
        body = parse_body(CountTokensRequest, await read_json_object(request, ctx.settings.limits.max_body_bytes))
        check_model(body.model)
        try:
            prepared = await prepare(body, ids.new_id("msg"))
        except ContextLengthError as exc:  # too long to answer is still countable
            return json_response({"input_tokens": exc.prompt_tokens})
        return json_response({"input_tokens": len(prepared.prompt_token_ids)})

    api.add_api_route(MESSAGES_PATH, create, methods=["POST"])
    api.add_api_route(MESSAGES_PATH + "/count_tokens", count_tokens, methods=["POST"])

    claimed = APIRouter(route_class=route_class(MODELS_CLAIM.carried_by))  # ``api``'s auth applies

    async def list_models(
        ctx: Ctx,
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
        after_id: str | None = None,
        before_id: str | None = None,
    ) -> Response:
        return json_response(models.page(ctx, limit, after_id, before_id))

    async def get_model(model_id: str, ctx: Ctx) -> Response:
        return json_response(models.retrieve(ctx, model_id))

    claimed.add_api_route(MODELS_PATH, list_models, methods=["GET"], include_in_schema=False)
    claimed.add_api_route(MODELS_PATH + "/{model_id:path}", get_model, methods=["GET"], include_in_schema=False)
    api.include_router(claimed)
    return api
