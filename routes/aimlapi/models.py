"""AI/ML API's public model catalogue (``GET /models``, ``GET /model/{id}``)."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request, Response

from routes.aimlapi.response import js_number
from routes.aimlapi.settings import AimlapiSettings
from server.http.jsonio import dumps

CAPABILITIES = ["streaming", "tools", "structured_output", "reasoning"]

MODALITIES = {"input": ["text"], "output": ["text"]}


def model_card(settings: AimlapiSettings, include: set[str]) -> dict[str, Any]:
    """One entry of ``GET /v1/models``: ``id, info, type, aliases, tags`` (+ what ``include`` asks for)."""
    card: dict[str, Any] = {
        "id": settings.model_id,
        "info": {
            "name": settings.model_name,
            "developer": settings.model_developer,
            "description": "OpenAI's open-weight reasoning model with configurable reasoning effort and tool use.",
            "releasedAt": "2025-08-05",
            "contextLength": settings.model_context_length,
        },
        "type": "openai/chat-completions",
        "aliases": [],
        "tags": ["playground:chat"],
    }
    every = "all" in include
    if every or "modalities" in include:
        card["modalities"] = MODALITIES
    if every or "capabilities" in include:
        card["capabilities"] = CAPABILITIES
    if every or "pricing" in include:
        card["pricing"] = {
            "kind": "fixed",
            "currency": "USD",
            "units": [
                {"name": "input", "per": "1M tokens", "price": js_number(settings.usd_per_million_prompt_tokens)},
                {"name": "output", "per": "1M tokens", "price": js_number(settings.usd_per_million_completion_tokens)},
            ],
        }
    return card


def _values(raw: str | None) -> set[str]:
    return {v.strip().lower() for v in (raw or "").split(",") if v.strip()}


def matches(settings: AimlapiSettings, query: dict[str, str]) -> bool:
    """The documented filters: OR within one parameter, AND across parameters, case-insensitive."""
    facets = {
        "id": {settings.model_id.lower()},
        "type": {"openai/chat-completions"},
        "tags": {"playground:chat"},
        "modalities": set(MODALITIES["input"] + MODALITIES["output"]),
        "input_modalities": set(MODALITIES["input"]),
        "output_modalities": set(MODALITIES["output"]),
        "capabilities": set(CAPABILITIES),
    }
    for name, have in facets.items():
        wanted = _values(query.get(name))
        if wanted and not wanted & have:
            return False
    return True


def models_response(request: Request, settings: AimlapiSettings) -> Response:
    query = dict(request.query_params)
    data = [model_card(settings, _values(query.get("include")))] if matches(settings, query) else []
    body = dumps({"object": "list", "data": data})
    etag = 'W/"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'
    headers = {"ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
