"""Ollama's paths under ``/api`` (its prefix: the other wire APIs under ``/api/...`` own longer ones), with Bearer
auth when keys are configured, and ``GET /`` ("Ollama is running")."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from routes.ollama import manage, models, names
from routes.ollama.context import context_messages
from routes.ollama.errors import error_response, json_response, render_error
from routes.ollama.options import Options
from routes.ollama.request import ChatIn, GenerateIn, keep_alive_seconds
from routes.ollama.response import (
    Reply,
    chat_object,
    done_reason,
    generate_object,
    logprobs_body,
    message,
    metrics,
    tool_calls_body,
)
from routes.ollama.settings import OllamaSettings, section
from routes.ollama.stream import chat_stream, generate_stream, ndjson_response
from routes.shared.run import Ctx, complete, open_stream, parse_body
from server.context import ServerContext
from server.errors import ContextLengthError, EngineUnavailableError, InvalidRequestError, ModelNotFoundError
from server.http.auth import bearer_token, header_value, require_key
from server.http.body import read_json_object, require_json_media_type
from server.http.routing import error_route_class
from server.service import PreparedRequest
from server.types import ChatMessage, ChatRequest, ChatResult

BASE = "/api"
UNTIL_FULL = 2**62  # num_predict -1: as many tokens as fit (the core caps it at the context and its own limit)
BROWSER_HEADERS = ("origin", "sec-fetch-mode")


async def authenticate(request: Request, ctx: Ctx) -> None:
    require_key(ctx.keys, bearer_token(request), missing="unauthorized", invalid="unauthorized")


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    return (BASE,)


def sdk_base(ctx: ServerContext) -> str:
    """The `ollama` client's ``host`` path: the root (it appends ``/api/chat``)."""
    return ""


async def read_body(request: Request, ctx: ServerContext, settings: OllamaSettings) -> dict[str, Any]:
    """The JSON body; any Content-Type from a client that is no browser (as Ollama reads any), JSON from a browser."""
    browser = any(header_value(request, h) is not None for h in BROWSER_HEADERS)
    lenient = settings.any_content_type and not browser
    if not lenient:
        require_json_media_type(request)
    return await read_json_object(request, ctx.settings.limits.max_body_bytes, media_type=False)


def check_model(settings: OllamaSettings, requested: str, *, chat: bool) -> None:
    """Ollama's answers for a missing, invalid or unknown model name (chat and generate differ for a missing one)."""
    if not requested and chat:
        raise InvalidRequestError("model is required", param="model")
    if requested and names.parse(requested) is None:
        raise InvalidRequestError("invalid model name", param="model")
    if models.resolve(settings, requested) is None:
        raise ModelNotFoundError(requested)


async def ready(ctx: ServerContext) -> None:
    """What Ollama waits for before it answers a load: the engine serving."""
    if ctx.service.loading:
        raise EngineUnavailableError("The model is still loading; retry in a few seconds.", retry_after=5)
    await ctx.engine.check_health()


def unloading(keep_alive: Any) -> bool:
    return keep_alive_seconds(keep_alive) == 0


async def prepare(
    ctx: ServerContext, settings: OllamaSettings, core: ChatRequest, options: Options, truncate: bool
) -> PreparedRequest:
    """Render and validate. A prompt past the context drops the oldest messages (system ones kept, the last one
    always) until it fits, as Ollama does unless ``truncate: false``."""
    kwargs: dict[str, Any] = {
        "default_max_tokens": settings.default_num_predict or UNTIL_FULL,
        "clamp_max_tokens": True,
        "context_window": options.context_window,
    }
    try:
        return await ctx.service.prepare(core, **kwargs)
    except ContextLengthError as exc:
        if not truncate or len(core.messages) < 2:
            raise
        failure = exc
    msgs = core.messages
    best: PreparedRequest | None = None
    low, high = 1, len(msgs) - 1
    while low <= high:
        cut = (low + high) // 2
        kept = [m for m in msgs[:cut] if m.role in ("system", "developer")] + msgs[cut:]
        try:
            best = await ctx.service.prepare(dataclasses.replace(core, messages=kept), **kwargs)
            high = cut - 1
        except InvalidRequestError:
            low = cut + 1
    if best is None:
        raise failure
    return best


def router(ctx: ServerContext) -> APIRouter:
    settings = section(ctx)
    route_class = error_route_class(render_error)
    api = APIRouter(route_class=route_class, dependencies=[Depends(authenticate)])

    @api.post(BASE + "/chat")
    async def chat(request: Request, ctx: Ctx) -> Response:
        received = time.time()
        body = parse_body(ChatIn, await read_body(request, ctx, settings))
        body.check()
        body.effort()  # think is checked while decoding, before the model (as Go's decoder does)
        check_model(settings, body.model, chat=True)
        reply = Reply(body.model, received, body.top_logprobs if body.logprobs else None)
        if not body.messages:
            loaded = "unload" if unloading(body.keep_alive) else "load"
            if loaded == "load":
                body.parsed_options(settings.default_options)
                await ready(ctx)
            return json_response(chat_object(reply, message(""), done=True, reason=loaded))
        options = body.parsed_options(settings.default_options)
        prepared = await prepare(ctx, settings, body.to_core(options, uuid.uuid4().hex), options, body.truncate)
        if body.stream:
            return ndjson_response(chat_stream(await open_stream(ctx, prepared), reply))
        result = await complete(ctx, request, prepared)
        msg = message(result.content or "", result.reasoning or "", tool_calls_body(result.tool_calls))
        return json_response(chat_object(reply, msg, **_final(reply, result)))

    @api.post(BASE + "/generate")
    async def generate(request: Request, ctx: Ctx) -> Response:
        received = time.time()
        body = parse_body(GenerateIn, await read_body(request, ctx, settings))
        body.check()
        body.effort()
        check_model(settings, body.model, chat=False)
        reply = Reply(body.model, received, body.top_logprobs if body.logprobs else None)
        if not body.prompt and unloading(body.keep_alive):
            return json_response(generate_object(reply, "", done=True, reason="unload"))
        if body.raw and (body.template or body.system or body.context):
            raise InvalidRequestError("raw mode does not support template, system, or context", param="raw")
        unsupported = [
            (body.raw, "raw", "raw mode is not supported: prompts are rendered as harmony by this server"),
            (body.suffix, "suffix", f"{models.canonical(settings).full} does not support insert"),
            (body.template, "template", "template is not supported: prompts are rendered as harmony by this server"),
            (body.images, "images", "this model does not support images"),
        ]
        for present, param, text in unsupported:
            if present:
                raise InvalidRequestError(text, param=param)
        options = body.parsed_options(settings.default_options)
        if not body.prompt:
            await ready(ctx)
            return json_response(generate_object(reply, "", done=True, reason="load"))
        history = context_messages(body.context)
        if body.system:
            history = [ChatMessage(role="system", content=body.system)] + [m for m in history if m.role != "system"]
        core = body.core([*history, ChatMessage(role="user", content=body.prompt)], options, uuid.uuid4().hex)
        prepared = await prepare(ctx, settings, core, options, body.truncate)
        if body.stream:
            events = await open_stream(ctx, prepared)
            return ndjson_response(generate_stream(events, reply, list(prepared.prompt_token_ids)))
        result = await complete(ctx, request, prepared)
        final = _final(reply, result)
        logprobs = final.pop("logprobs", None)
        return json_response(
            generate_object(
                reply,
                result.content or "",
                result.reasoning or "",
                **final,
                context=result.prompt_token_ids + result.token_ids,
                tool_calls=tool_calls_body(result.tool_calls),
                logprobs=logprobs,
            )
        )

    @api.get(BASE + "/tags")
    @api.head(BASE + "/tags")
    async def tags() -> Response:
        return json_response(models.tags_body(settings))

    @api.post(BASE + "/show")
    async def show(request: Request, ctx: Ctx) -> Response:
        body = parse_body(manage.ModelIn, await read_body(request, ctx, settings))
        if not body.target:
            raise InvalidRequestError("model is required", param="model")
        check_model(settings, body.target, chat=True)
        return json_response(models.show_body(settings))

    @api.get(BASE + "/ps")
    async def ps(ctx: Ctx) -> Response:
        return json_response(models.ps_body(settings, ctx.engine.info.max_model_len))

    @api.get(BASE + "/version")
    @api.head(BASE + "/version")
    async def version() -> Response:
        return json_response({"version": settings.version})

    def model_route(path: str, handler: Any, method: str = "post") -> None:
        async def endpoint(request: Request, ctx: Ctx) -> Response:
            body = parse_body(manage.ModelIn, await read_body(request, ctx, settings))
            return handler(settings, body)  # type: ignore[no-any-return]

        getattr(api, method)(BASE + path)(endpoint)

    model_route("/pull", manage.pull)
    model_route("/push", manage.push)
    model_route("/create", manage.create)
    model_route("/delete", manage.delete, "delete")

    @api.post(BASE + "/copy")
    async def copy(request: Request, ctx: Ctx) -> Response:
        return manage.copy(settings, parse_body(manage.CopyIn, await read_body(request, ctx, settings)))

    @api.post(BASE + "/embed")
    async def embed(request: Request, ctx: Ctx) -> Response:
        return manage.embed(settings, parse_body(manage.EmbedIn, await read_body(request, ctx, settings)))

    @api.post(BASE + "/embeddings")
    async def embeddings(request: Request, ctx: Ctx) -> Response:
        return manage.embeddings(settings, parse_body(manage.EmbedIn, await read_body(request, ctx, settings)))

    @api.head(BASE + "/blobs/{digest}")
    async def blob(digest: str) -> Response:
        return error_response(404, f'blob "{digest}" not found')

    @api.post(BASE + "/blobs/{digest}")
    async def upload(digest: str) -> Response:
        return error_response(403, manage.READ_ONLY)

    outer = APIRouter(route_class=route_class)
    outer.include_router(api)
    if settings.root_banner:  # no key: a probe for a running server

        @outer.get("/")
        @outer.head("/")
        async def banner() -> Response:
            return Response("Ollama is running", media_type="text/plain")

    return outer


def _final(reply: Reply, result: ChatResult) -> dict[str, Any]:
    """The last object's fields of a whole (non-streamed) answer."""
    return {
        "done": True,
        "reason": done_reason(result.finish_reason),
        "logprobs": logprobs_body(result.logprobs, reply.top_logprobs),
        "stats": metrics(reply, result.usage, result.timings),
    }
