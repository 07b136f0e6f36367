"""Oxen's model objects (``/api/ai/models``)."""

from __future__ import annotations

from typing import Any

from routes.oxen.request import request_schema
from routes.oxen.response import sort_keys
from routes.oxen.settings import OxenSettings


def model_object(settings: OxenSettings) -> dict[str, Any]:
    schema = request_schema()
    body = {
        "id": settings.model_name,
        "object": "model",
        "created": settings.model_created,
        "owned_by": "oxen",
        "display_name": settings.display_name,
        "description": settings.description,
        "summary": settings.summary,
        "model_type": "base",
        "endpoint": "/chat/completions",
        "capabilities": {"input": ["text"], "output": ["text"]},
        "pricing": {
            "method": "token",
            "input_cost_per_token": settings.input_cost_per_token,
            "output_cost_per_token": settings.output_cost_per_token,
        },
        "fine_tuning": None,
        "deployments": [],
        "developer": {"name": settings.developer_name, "logo": settings.developer_logo},
        "source_model": None,
        "image_url": None,
        "released_at": settings.released_at,
        "request_schema": schema,
        "json_request_schema": schema,
        "showcase": None,
    }
    return sort_keys(body) if settings.sort_keys == "all" else body


def matches(settings: OxenSettings, developer_name: str | None, provider_name: str | None) -> bool:
    if developer_name is not None and developer_name.lower() != settings.developer_name.lower():
        return False
    return provider_name is None or provider_name.lower() == "oxen"
