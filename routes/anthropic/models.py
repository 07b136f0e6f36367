"""Anthropic's model objects and list page (``GET /v1/models``, ``GET /v1/models/{id}``)."""

from __future__ import annotations

from typing import Any

from routes.anthropic.settings import section
from server.context import ServerContext
from server.errors import NotFoundError


def model_object(ctx: ServerContext, model_id: str) -> dict[str, Any]:
    served = ctx.settings.engine.served_model_name
    settings = section(ctx)
    max_tokens = ctx.settings.limits.max_output_tokens or ctx.engine.info.max_model_len
    return {
        "type": "model",
        "id": model_id,
        "display_name": (settings.display_name or served) if model_id == served else model_id,
        "created_at": settings.created_at,
        "lifecycle": "active",
        "max_input_tokens": ctx.engine.info.max_model_len,
        "max_tokens": min(max_tokens, ctx.engine.info.max_model_len),
    }


def retrieve(ctx: ServerContext, model_id: str) -> dict[str, Any]:
    served = ctx.settings.engine.served_model_name
    if not section(ctx).accepts(model_id, served):
        raise NotFoundError(f"model: {model_id}", param="model")
    return model_object(ctx, model_id)


def page(ctx: ServerContext, limit: int, after_id: str | None, before_id: str | None) -> dict[str, Any]:
    """A page of the listed models: ``limit`` of them after ``after_id`` (or the ``limit`` before ``before_id``)."""
    names = section(ctx).listed(ctx.settings.engine.served_model_name)
    if after_id is not None:
        start = names.index(after_id) + 1 if after_id in names else len(names)
        chosen, more = names[start : start + limit], start + limit < len(names)
    elif before_id is not None:
        stop = names.index(before_id) if before_id in names else 0
        chosen, more = names[max(0, stop - limit) : stop], stop - limit > 0
    else:
        chosen, more = names[:limit], limit < len(names)
    return {
        "data": [model_object(ctx, name) for name in chosen],
        "has_more": more,
        "first_id": chosen[0] if chosen else None,
        "last_id": chosen[-1] if chosen else None,
    }
