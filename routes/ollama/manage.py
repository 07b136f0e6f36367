"""Ollama's model-management and embedding endpoints, answered for a server with one fixed model.

- ``pull`` of the model this server has: the progress Ollama streams for a model already downloaded, ending in
  ``{"status":"success"}`` (``stream: false``: that object alone). Any other name: Ollama's answer for a name its
  registry does not know (``pull model manifest: file does not exist``).
- ``push``: refused as the registry refuses it (``unauthorized: access denied``).
- ``create``, ``copy``, ``delete`` and blob uploads of the model: 403, this server's models cannot change (Ollama
  answers a name it does not have with its 404, and bad names with its 400s, as here).
- ``embed`` / ``embeddings``: gpt-oss has no embeddings; Ollama answers 501 / 500 ``this model does not support
  embeddings`` (an empty input: its empty answer, as it does when only loading a model).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Response

from routes.ollama import models, names
from routes.ollama.errors import error_response, go_json, json_response, not_found
from routes.ollama.request import GoStruct
from routes.ollama.settings import OllamaSettings
from routes.ollama.stream import ndjson_response
from server.errors import InvalidRequestError

READ_ONLY = "this server serves one fixed model; models cannot be created, copied or deleted"
NO_EMBEDDINGS = "this model does not support embeddings"
NOT_IN_REGISTRY = "pull model manifest: file does not exist"


class ModelIn(GoStruct):
    """``pull``, ``push``, ``delete``, ``create``: ``model`` (or the deprecated ``name``), ``stream``."""

    model: str = ""
    name: str = ""
    stream: bool = True

    @property
    def target(self) -> str:
        return self.model or self.name


class CopyIn(GoStruct):
    source: str = ""
    destination: str = ""


class EmbedIn(GoStruct):
    model: str = ""
    input: Any = None
    prompt: str = ""


async def _lines(objects: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for obj in objects:
        yield go_json(obj) + b"\n"


def _progress(objects: list[dict[str, Any]], stream: bool) -> Response:
    """Ollama's progress answer: the objects as NDJSON, or (``stream: false``) the last one, or its error."""
    if stream:
        return ndjson_response(_lines(objects))
    last = objects[-1]
    return error_response(500, last["error"]) if "error" in last else json_response(last)


def _valid(text: str, message: str) -> names.Name:
    name = names.parse(text)
    if name is None:
        raise InvalidRequestError(message, param="model")
    return name


def pull(settings: OllamaSettings, body: ModelIn) -> Response:
    _valid(body.target, "invalid model name")
    if models.resolve(settings, body.target) is None:
        return _progress([{"status": "pulling manifest"}, {"error": NOT_IN_REGISTRY}], body.stream)
    digest = models.digest(settings)
    layer = {"status": f"pulling {digest[:12]}", "digest": f"sha256:{digest}"}
    layer |= {"total": settings.size, "completed": settings.size}
    steps = ["verifying sha256 digest", "writing manifest", "success"]
    return _progress([{"status": "pulling manifest"}, layer, *({"status": s} for s in steps)], body.stream)


def push(settings: OllamaSettings, body: ModelIn) -> Response:
    if not body.target:
        raise InvalidRequestError("model is required", param="model")
    if models.resolve(settings, body.target) is None:
        failed = [{"status": "retrieving manifest"}, {"status": "couldn't retrieve manifest"}]
        return _progress([*failed, {"error": "file does not exist"}], body.stream)
    return _progress([{"status": "retrieving manifest"}, {"error": "unauthorized: access denied"}], body.stream)


def delete(settings: OllamaSettings, body: ModelIn) -> Response:
    if not body.target:
        raise InvalidRequestError("model is required", param="model")
    _valid(body.target, f'name "{body.target}" is invalid')
    if models.resolve(settings, body.target) is None:
        return error_response(404, not_found(body.target))
    return error_response(403, READ_ONLY)


def copy(settings: OllamaSettings, body: CopyIn) -> Response:
    _valid(body.source, f'source "{body.source}" is invalid')
    _valid(body.destination, f'destination "{body.destination}" is invalid')
    if models.resolve(settings, body.source) is None:
        return error_response(404, f'model "{body.source}" not found')
    return error_response(403, READ_ONLY)


def create(settings: OllamaSettings, body: ModelIn) -> Response:
    _valid(body.target, "invalid model name")
    return error_response(403, READ_ONLY)


def embed(settings: OllamaSettings, body: EmbedIn) -> Response:
    """``POST /api/embed``."""
    value = body.input
    texts = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not (value is None or isinstance(value, str) or texts):
        raise InvalidRequestError("invalid input type", param="input")
    if body.model:
        _valid(body.model, "invalid model name")
    if models.resolve(settings, body.model) is None:
        return error_response(404, not_found(body.model))
    if not value:
        return json_response({"model": body.model, "embeddings": []})
    return error_response(501, NO_EMBEDDINGS)


def embeddings(settings: OllamaSettings, body: EmbedIn) -> Response:
    """``POST /api/embeddings`` (superseded by ``embed``)."""
    if names.parse(body.model) is None:
        raise InvalidRequestError("model is required", param="model")
    if models.resolve(settings, body.model) is None:
        return error_response(404, f'model "{body.model}" not found, try pulling it first')
    if not body.prompt:
        return json_response({"embedding": []})
    return error_response(500, NO_EMBEDDINGS)
