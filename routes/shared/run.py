"""Running a prepared request (or its ``n`` choices) from a route: the context dependency, body parsing, admission,
disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from server.choices import ChoiceResults, IndexedEvent, admit_all, complete_all, stream_all
from server.context import ServerContext
from server.errors import ClientDisconnectedError
from server.http.routing import validation_error
from server.service import PreparedRequest
from server.types import ChatResult, Delta, Event, Finish

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


async def context(request: Request) -> ServerContext:
    """The running server's shared state (a FastAPI dependency)."""
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[ServerContext, Depends(context)]


def parse_body(model: type[M], body: dict[str, Any]) -> M:
    """``body`` as the route's request model; validation errors become a 400 naming the first bad field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def start(ctx: ServerContext, prepared: PreparedRequest) -> None:
    """Checks that must pass before the first byte (engine up, capacity); takes the admission slot."""
    await ctx.service.admit(prepared)


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``; cancel it (aborting the engine request) if the client goes away first."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()  # aborts the engine request
            raise ClientDisconnectedError("The client closed the connection before the answer was ready.")
        return task.result()
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


async def complete(ctx: ServerContext, request: Request, prepared: PreparedRequest) -> ChatResult:
    """Admit, run to the end and fold (the non-streaming answer)."""
    await start(ctx, prepared)
    return await until_disconnect(request, ctx.service.complete(prepared))


async def open_stream(ctx: ServerContext, prepared: PreparedRequest) -> AsyncIterator[Event]:
    """Admit, then the neutral event stream (closing it early aborts the engine request)."""
    await start(ctx, prepared)
    return ctx.service.stream(prepared)


async def complete_choices(ctx: ServerContext, request: Request, choices: list[PreparedRequest]) -> ChoiceResults:
    """Admit every choice (or none), run them all to the end and fold each (the non-streaming answer)."""
    await admit_all(ctx.service, choices)
    return await until_disconnect(request, complete_all(ctx.service, choices))


async def open_choices(ctx: ServerContext, choices: list[PreparedRequest]) -> AsyncIterator[IndexedEvent]:
    """Admit every choice (or none), then their ``(index, event)`` stream (closing it early aborts them all)."""
    await admit_all(ctx.service, choices)
    return stream_all(ctx.service, choices)


class EventBuilder(Protocol):
    """A route's builder of its answer from core events (its stream events are what ``feed``/``close`` return)."""

    def feed(self, delta: Delta) -> Any: ...

    def close(self, finish: Finish) -> Any: ...


async def feed_all(builder: EventBuilder, events: AsyncIterator[Event]) -> None:
    """Feed a whole run into ``builder`` (a non-streaming answer); a truncated run raises its typed error."""
    try:
        async for event in events:
            if isinstance(event, Finish):
                if event.truncated:
                    raise event.error_of()
                builder.close(event)
                break
            builder.feed(event)
    finally:
        await events.aclose()  # type: ignore[attr-defined]
