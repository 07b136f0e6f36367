"""The OpenAI route's answers: vLLM's chat-completion object (``routes/shared/vllm_response.py``) and model cards."""

from __future__ import annotations

import uuid
from typing import Any

from routes.openai.settings import section
from routes.shared.vllm_response import VllmShape
from server.context import ServerContext
from server.errors import ModelNotFoundError


def model_names(ctx: ServerContext) -> list[str]:
    """The served model's name, then its aliases."""
    primary = ctx.settings.engine.served_model_name
    return [primary, *[a for a in section(ctx).model_aliases if a != primary]]


def check_model(ctx: ServerContext, model: str | None) -> str:
    """The model name to echo; raises for an unknown one."""
    if model is None:
        return ctx.settings.engine.served_model_name
    if model not in model_names(ctx):
        raise ModelNotFoundError(model)
    return model


def shape(model: str) -> VllmShape:
    """Current vLLM: ``reasoning``, no empty ``tool_calls``, ``choices[].token_ids`` always present."""
    return VllmShape(model=model)


def model_card(ctx: ServerContext, name: str, owned_by: str | None = None) -> dict[str, Any]:
    """vLLM's model object (``owned_by`` defaults to this route's setting)."""
    created = int(ctx.started_at)
    return {
        "id": name,
        "object": "model",
        "created": created,
        "owned_by": owned_by if owned_by is not None else section(ctx).owned_by,
        "root": name,
        "parent": None,
        "max_model_len": ctx.engine.info.max_model_len,
        "permission": [
            {
                "id": f"modelperm-{uuid.uuid5(uuid.NAMESPACE_URL, name).hex}",
                "object": "model_permission",
                "created": created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }
        ],
    }
