"""The ASGI app: ``create_app(settings, engine=None)``. Nothing is built at import time.

The engine loads in the background after start-up: ``/live`` answers at once, ``/health`` (readiness)
says 503 with the loading state until the engine can serve, and turns 503 again if it dies. On
shutdown, in-flight requests get ``server.drain_timeout_s`` to finish before the engine stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Mapping

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from routes import WIRE_APIS
from routes.provider import Owners, Provider
from server import __version__, metrics
from server.context import ServerContext
from server.engine.base import Engine
from server.engine.factory import create_engine
from server.errors import (
    EngineUnavailableError,
    MethodNotAllowedError,
    NotFoundError,
    ServerError,
)
from server.faults.plan import FaultPlan
from server.harmony.render import HarmonyRenderer, RenderOptions
from server.http.auth import KeyStore, bearer_token
from server.http.faults import FaultMiddleware
from server.http.framing import FramingErrorMiddleware
from server.http.jsonio import dumps
from server.http.requestlog import RequestLogMiddleware
from server.http.routing import is_gated, validation_error
from server.http.streamed import allow_body_lane
from server.sealing import Sealer
from server.service import ChatService
from server.settings import Settings
from server.store import open_store

log = logging.getLogger(__name__)


def build_context(settings: Settings, engine: Engine | None = None) -> ServerContext:
    engine = engine or create_engine(settings)
    h = settings.harmony
    renderer = HarmonyRenderer(
        RenderOptions(
            model_identity=h.model_identity,
            knowledge_cutoff=h.knowledge_cutoff,
            conversation_start_date=h.conversation_start_date,
            default_reasoning_effort=h.default_reasoning_effort,
            text_cache_bytes=settings.limits.render_cache_bytes,
        )
    )
    testing = settings.testing
    faults = FaultPlan(testing.faults, testing.fault_header) if testing.faults_enabled else None
    service = ChatService(engine, renderer, settings.limits, settings.auth.key_limits, faults)
    return ServerContext(
        settings=settings,
        engine=engine,
        service=service,
        keys=KeyStore.from_settings(settings.auth),
        store=open_store(settings.store),
        sealer=Sealer.from_settings(settings.store),
    )


async def _load(ctx: ServerContext) -> None:
    ctx.readiness.set("loading", f"starting the {ctx.engine.info.name} engine")
    ctx.service.loading = True
    started = time.monotonic()
    try:
        await ctx.engine.start()
    except Exception as exc:
        log.exception("engine failed to start")
        ctx.readiness.set("failed", f"engine failed to start: {exc.__class__.__name__}: {exc}")
        metrics.front_end().engine_failures.inc()
        return
    finally:
        ctx.service.loading = False
    # As vLLM's API server does once started: the start-up heap (vLLM, torch, tokenizers) is marked permanent, so the
    # collector's full passes stop walking it on every collection while serving.
    gc.collect()
    gc.freeze()
    ctx.readiness.set("ready", f"loaded in {time.monotonic() - started:.1f}s")
    log.info("engine ready (%s, max_model_len=%d)", ctx.engine.info.name, ctx.engine.info.max_model_len)


ENGINE_WATCH_INTERVAL_S = 0.5


async def watch_engine(ctx: ServerContext) -> None:
    """Turn readiness to ``failed`` when the engine dies; with ``server.exit_on_engine_failure``, ask the server to
    exit (status 1) once the engine has failed to start or died, after in-flight requests got their error ending."""
    while True:
        await asyncio.sleep(ENGINE_WATCH_INTERVAL_S)
        if ctx.readiness.state == "ready":
            try:
                await ctx.engine.check_health()
            except EngineUnavailableError as exc:
                log.error("the engine died: %s", exc.message)
                ctx.readiness.set("failed", exc.message)
                metrics.front_end().engine_failures.inc()
        if ctx.readiness.state == "failed" and ctx.settings.server.exit_on_engine_failure:
            ctx.service.begin_shutdown()
            deadline = time.monotonic() + 5  # streams of a dead engine end with their error events at once
            while ctx.service.active_requests and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            log.error("exiting: %s", ctx.readiness.detail)
            ctx.exit_code = 1
            return


async def drain(ctx: ServerContext, timeout: float) -> None:
    """Stop admitting (503), let running requests finish for ``timeout`` seconds, then abort the rest: their
    streams end with ``finish_reason: "abort"`` and the terminator rather than a cut connection."""
    if ctx.readiness.state != "stopping":
        ctx.readiness.set("stopping", "draining in-flight requests")
    ctx.service.begin_shutdown()
    deadline = time.monotonic() + timeout
    while ctx.service.active_requests and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if ctx.service.active_requests:
        aborted = await ctx.service.abort_all()
        log.warning("drain timeout: %d request(s) still running were aborted", aborted)
        deadline = time.monotonic() + 5
        while ctx.service.active_requests and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


def create_app(
    settings: Settings, engine: Engine | None = None, wire_apis: tuple[Provider, ...] = WIRE_APIS
) -> FastAPI:
    """The app serving ``wire_apis`` (the registry by default; ``settings`` must hold their sections)."""
    ctx = build_context(settings, engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ctx.store.open()  # a store that cannot open stops the start-up (ConfigError)
        loader = asyncio.create_task(_load(ctx))
        watcher = asyncio.create_task(watch_engine(ctx))
        try:
            yield
        finally:
            await drain(ctx, settings.server.drain_timeout_s)
            for hook in ctx.shutdown_hooks:
                try:
                    await hook()
                except Exception:
                    log.exception("a shutdown hook failed")
            for task in (loader, watcher):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            ctx.service.close()
            await ctx.engine.shutdown()
            await ctx.store.close()

    docs = settings.server.docs  # the interactive docs and the OpenAPI document: off unless enabled
    app = FastAPI(
        title="gpt-oss server",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.ctx = ctx

    @app.get("/metrics", include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        """vLLM's metrics under vLLM's names and ours under ``gptoss:`` (public unless ``server.metrics_public`` is
        off: then any API key, as a Bearer token)."""
        if not settings.server.metrics_public and ctx.keys.enabled and not ctx.keys.check(bearer_token(request) or ""):
            return Response("authentication required\n", status_code=401, media_type="text/plain")
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    @app.get("/live", include_in_schema=False)
    async def live() -> Response:
        return Response(dumps({"status": "alive"}), media_type="application/json")

    @app.get("/health", include_in_schema=False)
    async def health() -> Response:
        state = ctx.readiness.state
        if state == "ready":
            try:
                await ctx.engine.check_health()
            except EngineUnavailableError as exc:
                ctx.readiness.set("failed", exc.message)
                state = "failed"
        body = {"status": "ok" if state == "ready" else state, "detail": ctx.readiness.detail}
        if state == "ready":
            body["active_requests"] = ctx.service.active_requests  # type: ignore[assignment]
            body["engine_requests"] = ctx.engine.num_running()  # type: ignore[assignment]
        return Response(dumps(body), status_code=200 if state == "ready" else 503, media_type="application/json")

    for provider in wire_apis:
        if provider.enabled(ctx):
            app.include_router(provider.http_side().router(ctx))
    # routes gated by headers (a wire API's claims, routes/provider.py) are tried first: a request they do not match
    # falls through to the path's usual owner
    app.router.routes.sort(key=lambda route: not is_gated(route))

    owners = Owners(ctx, wire_apis)

    def render(error: ServerError, request: Request) -> Response:
        """In the envelope of the wire API claiming the request or owning the path (longest prefix), else the first
        registered one's."""
        owner = owners.of(request.url.path, request.headers) or wire_apis[0]
        return owner.http_side().render_error(error, request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        error: ServerError
        if exc.status_code == 405:
            error = MethodNotAllowedError(f"Method {request.method} is not allowed on {request.url.path}.")
        else:
            error = NotFoundError(f"Not found: {request.url.path}")
        return render(error, request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return render(validation_error(exc), request)

    def api_of(path: str, headers: Mapping[str, str]) -> str | None:
        owner = owners.of(path, headers)
        return owner.name if owner is not None else None

    if settings.testing.faults_enabled:  # never installed otherwise: no code reads the fault header
        log.warning(
            "fault injection is ON: %d rule(s); clients may ask for faults with the %s header",
            len(settings.testing.faults),
            settings.testing.fault_header,
        )
        app.add_middleware(FaultMiddleware, api_of=api_of, header=settings.testing.fault_header)
    # A request whose head the HTTP protocol found malformed: a 400 in the owning route's envelope.
    app.add_middleware(FramingErrorMiddleware, render=render)
    origins = settings.server.cors_allow_origins
    if origins:  # off by default: no CORS headers at all, so browsers refuse cross-origin reads and preflights
        app.add_middleware(
            CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"], allow_headers=["*"], max_age=600
        )
    # outermost: every response carries X-Request-Id, and every request is logged once
    server = settings.server
    app.add_middleware(RequestLogMiddleware, api_of=api_of, fmt=server.log_format, log_probes=server.log_probes)
    # each of these reads only a response's head: streamed bodies may go straight to the connection
    allow_body_lane(app, (FaultMiddleware, FramingErrorMiddleware, CORSMiddleware, RequestLogMiddleware))

    return app
