"""The Responses API's paths, under ``/v1`` and ``/openai/v1``: ``POST /responses``, ``GET|DELETE
/responses/{id}``, ``GET /responses/{id}/input_items``, ``POST /responses/{id}/cancel``, ``POST
/responses/input_tokens``. Bearer auth with the server's keys; a stored response belongs to the key that made it."""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from routes.openai.router import authenticate  # the same keys, the same Bearer refusals
from routes.responses import ids
from routes.responses.errors import render_error
from routes.responses.items import Item, parse_input
from routes.responses.output import Event, Output, replay
from routes.responses.request import ENCRYPTED_REASONING, OUTPUT_LOGPROBS, CreateResponse
from routes.responses.response import check_model, skeleton, to_core
from routes.responses.settings import section
from routes.responses.state import ResponsesState
from routes.shared.run import Ctx, feed_all, open_stream, parse_body, until_disconnect
from server.context import ServerContext
from server.errors import ContextLengthError, InvalidRequestError, ServerError
from server.http.auth import bearer_token
from server.http.body import read_json_object
from server.http.jsonio import dumps
from server.http.routing import error_route_class
from server.http.sse import sse_response
from server.service import PreparedRequest
from server.types import Event as CoreEvent
from server.types import Finish

__all__ = ["prefixes", "render_error", "router"]

log = logging.getLogger(__name__)

PREFIXES = ("/v1", "/openai/v1")


def prefixes(ctx: ServerContext) -> tuple[str, ...]:
    return tuple(p + "/responses" for p in PREFIXES)


def sdk_base(ctx: ServerContext) -> str:
    """The `openai` SDK's ``base_url`` path (it appends ``/responses``)."""
    return PREFIXES[0]


def owner_of(request: Request, ctx: ServerContext) -> str | None:
    """Who a stored response belongs to: a digest of the API key that made it (None with auth off). Not the key's
    name: unnamed keys are numbered by their place in the list, which changes when a key is removed."""
    if not ctx.keys.enabled:
        return None
    return hashlib.sha256((bearer_token(request) or "").encode()).hexdigest()[:32]


def sse(events: AsyncIterator[Event]) -> Response:
    async def body() -> AsyncIterator[bytes]:
        async for event in events:
            yield b"event: " + event["type"].encode() + b"\ndata: " + dumps(event) + b"\n\n"

    return sse_response(body())


def json_response(value: Any) -> Response:
    return Response(dumps(value), media_type="application/json")


async def _listed(events: list[Event]) -> AsyncIterator[Event]:
    for event in events:
        yield event


def _renamed(exc: InvalidRequestError) -> InvalidRequestError:
    """The core names the chat field ``max_tokens``; this API calls it ``max_output_tokens``."""
    if exc.param == "max_tokens":
        exc.message = exc.message.replace("max_tokens", "max_output_tokens")
        exc.args = (exc.message,)
        exc.param = "max_output_tokens"
    return exc


def replayed(doc: dict[str, Any], after: int) -> list[Event]:
    """A stored response's events after sequence number ``after``. The replay has fewer deltas than the run had (one
    per content part): its terminal event keeps the run's own last number, so a client resuming after an event it
    saw still gets the end."""
    events = replay(doc["response"])
    last = doc.get("last_sequence")
    if events and last is not None and last > events[-1]["sequence_number"] and events[-1]["type"] != "error":
        events[-1] = {**events[-1], "sequence_number": last}
    return [e for e in events if e["sequence_number"] > after]


def _without_orphans(items: list[Item]) -> list[Item]:
    """Truncated items without the tool outputs whose calls were dropped (an output cannot stand alone)."""
    calls = {item["call_id"] for item in items if item["type"] == "function_call"}
    return [i for i in items if i["type"] != "function_call_output" or i["call_id"] in calls]


def router(ctx: ServerContext) -> APIRouter:
    settings = section(ctx)
    state = ResponsesState(ctx, settings.max_chain, settings.max_background)
    ctx.shutdown_hooks.append(state.close)
    api = APIRouter(route_class=error_route_class(render_error), dependencies=[Depends(authenticate)])

    def reasoning_of(item: Item, param: str) -> str:
        sealed = item.get("encrypted_content")
        if sealed:
            try:
                return str(ctx.sealer.open(sealed).get("text", ""))
            except InvalidRequestError as exc:
                raise InvalidRequestError(exc.message, param=f"{param}.encrypted_content") from None
        return "".join(part["text"] for part in item.get("content") or [])

    async def prepare(body: CreateResponse, items: list[Item], first_input: int, response_id: str) -> PreparedRequest:
        """Render and validate; with ``truncation: auto``, the oldest items are dropped until the input fits.
        ``items[first_input:]`` are this request's (errors name them as ``input[i]``)."""
        drop = 0
        while True:
            kept = _without_orphans(items[drop:]) if drop else items  # a client's own orphan is its error
            try:
                return await ctx.service.prepare(
                    to_core(body, kept, reasoning_of, response_id, first_input - (len(items) - len(kept)))
                )
            except ContextLengthError as exc:
                hopeless = (body.max_output_tokens or 0) >= exc.max_context  # no input is short enough
                if body.truncation != "auto" or len(kept) <= 1 or hopeless:
                    raise _renamed(exc) from None
                drop = max(1, drop * 2) if drop < len(items) - 1 else len(items) - 1
            except InvalidRequestError as exc:
                raise _renamed(exc) from None

    async def begin(request: Request, body: CreateResponse) -> tuple[Output, list[Item], PreparedRequest, bool]:
        body.check()
        model = check_model(ctx, body.model)
        owner = owner_of(request, ctx)
        store = body.store if body.store is not None else settings.store_by_default
        history = await state.history(owner, body.previous_response_id) if body.previous_response_id else []
        items = parse_input(body.input or [], ids.new_id, {item["id"]: item for item in history})
        response_id = ids.new_id("resp")
        prepared = await prepare(body, history + items, len(history), response_id)
        response = skeleton(ctx, body, response_id=response_id, created_at=ids.now(), model=model, store=store)
        sealer = ctx.sealer
        seal = (lambda text: sealer.seal({"text": text})) if body.includes(ENCRYPTED_REASONING) else None
        return Output(response, seal=seal, logprobs=body.includes(OUTPUT_LOGPROBS)), items, prepared, store

    async def create(request: Request, ctx: Ctx) -> Response:
        body = parse_body(CreateResponse, await read_json_object(request, ctx.settings.limits.max_body_bytes))
        output, items, prepared, store = await begin(request, body)
        owner = owner_of(request, ctx)
        if body.background:
            return await background(owner, body, output, items, prepared)
        events = await open_stream(ctx, prepared)
        if body.stream:
            return sse(streamed(owner, output, items, events, store))
        response = await until_disconnect(request, folded(output, events))
        if store:
            await state.save(owner, response, items)
        return json_response(response)

    async def folded(output: Output, events: AsyncIterator[CoreEvent]) -> dict[str, Any]:
        await feed_all(output, events)
        return output.response

    async def streamed(
        owner: str | None, output: Output, items: list[Item], events: AsyncIterator[CoreEvent], store: bool
    ) -> AsyncIterator[Event]:
        try:
            for event in output.opening():
                yield event
            async for core in events:
                if isinstance(core, Finish):
                    tail = output.close(core)
                    if store and not core.truncated:
                        try:  # retrievable before the client sees the end
                            await state.save(owner, output.response, items)
                        except ServerError as exc:  # the answer itself is whole: it still goes out
                            log.error("response %s could not be stored: %s", output.response["id"], exc.message)
                    for event in tail:
                        yield event
                    return
                for event in output.feed(core):
                    yield event
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    async def background(
        owner: str | None, body: CreateResponse, output: Output, items: list[Item], prepared: PreparedRequest
    ) -> Response:
        state.reserve()
        try:
            events = await open_stream(ctx, prepared)  # admitted (or refused) before anything is stored
        except BaseException:
            state.release()
            raise
        output.response["status"] = "queued"
        queued = copy.deepcopy(output.response)
        try:
            await state.save(owner, queued, items)
        except BaseException:
            state.release()
            await events.aclose()  # type: ignore[attr-defined]
            raise
        run = state.start(owner, output, events, items)
        if body.stream:
            return sse(run.follow(None))
        return json_response(queued)

    async def retrieve(
        response_id: str,
        request: Request,
        ctx: Ctx,
        stream: bool = False,
        starting_after: Annotated[int | None, Query(ge=-1)] = None,
    ) -> Response:
        owner = owner_of(request, ctx)
        # openai-python sends a list as ``include[]=...``; other clients as repeated ``include=...``
        include = request.query_params.getlist("include") + request.query_params.getlist("include[]")
        if stream:
            doc = await state.load(owner, response_id)
            run = state.runs.get(response_id)
            if run is not None:
                return sse(run.follow(starting_after))
            return sse(_listed(replayed(doc, -1 if starting_after is None else starting_after)))
        response = await state.response(owner, response_id)
        if ENCRYPTED_REASONING in include:
            response = copy.deepcopy(response)
            for item in response["output"]:
                if item["type"] == "reasoning" and "encrypted_content" not in item:
                    text = "".join(p["text"] for p in item.get("content") or [])
                    item["encrypted_content"] = ctx.sealer.seal({"text": text})
        return json_response(response)

    async def delete(response_id: str, request: Request, ctx: Ctx) -> Response:
        await state.delete(owner_of(request, ctx), response_id)
        return json_response({"id": response_id, "object": "response", "deleted": True})

    async def cancel(response_id: str, request: Request, ctx: Ctx) -> Response:
        return json_response(await state.cancel(owner_of(request, ctx), response_id))

    async def input_items(
        response_id: str,
        request: Request,
        ctx: Ctx,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        order: Literal["asc", "desc"] = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> Response:
        items: list[Item] = (await state.load(owner_of(request, ctx), response_id))["input"]
        if order == "desc":
            items = items[::-1]
        ids_ = [item["id"] for item in items]
        start = ids_.index(after) + 1 if after in ids_ else 0
        stop = ids_.index(before) if before in ids_ else len(items)
        page = items[start:stop][:limit]
        return json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + len(page) < stop,
            }
        )

    async def input_tokens(request: Request, ctx: Ctx) -> Response:
        body = parse_body(CreateResponse, await read_json_object(request, ctx.settings.limits.max_body_bytes))
        body.background, body.stream = False, False
        _, _, prepared, _ = await begin(request, body)
        return json_response({"object": "response.input_tokens", "input_tokens": len(prepared.prompt_token_ids)})

    for prefix in PREFIXES:
        shown = prefix == "/v1"
        base = prefix + "/responses"
        api.add_api_route(base, create, methods=["POST"], include_in_schema=shown)
        api.add_api_route(base + "/input_tokens", input_tokens, methods=["POST"], include_in_schema=shown)
        api.add_api_route(base + "/{response_id}", retrieve, methods=["GET"], include_in_schema=shown)
        api.add_api_route(base + "/{response_id}", delete, methods=["DELETE"], include_in_schema=shown)
        api.add_api_route(base + "/{response_id}/cancel", cancel, methods=["POST"], include_in_schema=shown)
        api.add_api_route(base + "/{response_id}/input_items", input_items, methods=["GET"], include_in_schema=shown)
    return api
