"""vLLM's chat completion, run and answered (``n`` choices, streamed or not), for the routes that are vLLM's OpenAI
server (ours, and vLLM behind a gateway): the request's choices (``server/choices.py``), then the chunk stream
(``routes/shared/vllm_stream.py``) or the completion object (``routes/shared/vllm_response.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request, Response

from routes.openai.request import ChatCompletionRequest
from routes.shared.run import complete_choices, open_choices
from routes.shared.vllm_response import VllmShape, completion_body
from routes.shared.vllm_stream import StreamRequest, encode_stream
from server.choices import check_count, replicate
from server.context import ServerContext
from server.http.jsonio import dumps
from server.http.sse import sse_response
from server.types import Finish


async def respond_chat(
    ctx: ServerContext,
    request: Request,
    body: ChatCompletionRequest,
    shape: VllmShape,
    *,
    new_id: Callable[[], str],
    now: Callable[[], float],
    stream_error: Callable[[Finish], dict[str, Any]],
) -> Response:
    """Run a checked chat request (its ``n`` choices) and answer it, streamed or not. Its id is the body's
    ``request_id`` or ``new_id()`` (``ChatCompletionRequest.answer_ids``); ``created`` is ``now()`` read once the
    request is prepared (the route's clock, which tests pin)."""
    completion_id, core_id = body.answer_ids("chatcmpl", new_id)
    check_count(body.choices, ctx.settings.limits)
    prepared = await ctx.service.prepare(body.to_core(core_id))
    choices = replicate(prepared, body.choices)
    created = int(now())
    if body.stream:
        events = await open_choices(ctx, choices)
        options = body.stream_options
        stream = StreamRequest(
            completion_id=completion_id,
            created=created,
            include_usage=bool(options and options.include_usage),
            continuous_usage=bool(options and options.continuous_usage_stats),
            return_token_ids=body.return_token_ids,
            prompt_token_ids=prepared.prompt_token_ids,
            n=body.choices,
            tokens_as_ids=bool(body.return_tokens_as_token_ids),
        )
        return sse_response(encode_stream(events, shape, stream, stream_error))
    answer = await complete_choices(ctx, request, choices)
    payload = completion_body(
        answer,
        shape,
        completion_id=completion_id,
        created=created,
        options=body.chat_options(prepared.request.tool_choice.mode),
    )
    return Response(dumps(payload), media_type="application/json")
