"""vLLM's error envelope as E2E returns it: nested (``{"error": {...}}``) or flat (older vLLM), vLLM's error type
names and an integer ``code``; optionally the gateway's plain-text 401."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import Request, Response

from routes.e2e.settings import E2ESettings, section
from server.errors import AuthenticationError, InvalidRequestError, ModelNotFoundError, ServerError
from server.http.jsonio import dumps
from server.types import Finish


class BodyError(InvalidRequestError):
    """The body failed FastAPI/pydantic validation (vLLM answers those with type ``Bad Request``)."""


def error_type(exc: ServerError) -> str:
    """vLLM's ``type``: its serving errors are named ``BadRequestError``/``NotFoundError``/
    ``InternalServerError``; validation and HTTP errors carry the status phrase."""
    if isinstance(exc, BodyError):
        return HTTPStatus.BAD_REQUEST.phrase
    if isinstance(exc, InvalidRequestError):
        return "BadRequestError"
    if isinstance(exc, ModelNotFoundError):
        return "NotFoundError"
    if exc.status == 500:
        return "InternalServerError"
    return HTTPStatus(exc.status).phrase


def _envelope(info: dict[str, Any], settings: E2ESettings) -> dict[str, Any]:
    return {"object": "error", **info} if settings.error_style == "flat" else {"error": info}


def error_body(exc: ServerError, settings: E2ESettings) -> dict[str, Any]:
    info = {"message": exc.message, "type": error_type(exc), "param": exc.param, "code": exc.status}
    return _envelope(info, settings)


def render_error(exc: ServerError, request: Request | None = None) -> Response:
    settings = section(request.app.state.ctx) if request is not None else E2ESettings()
    if isinstance(exc, AuthenticationError) and settings.auth_error == "envoy":
        text = "Jwt is missing" if exc.code == "missing_api_key" else "Jwt verification fails"
        return Response(text, status_code=401, media_type="text/plain")
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return Response(
        dumps(error_body(exc, settings)), status_code=exc.status, media_type="application/json", headers=headers
    )


def stream_error(settings: E2ESettings) -> Any:
    """The one event vLLM sends when generation fails after the first byte."""

    def event(finish: Finish) -> dict[str, Any]:
        info = {"message": finish.error or "Generation failed.", "type": "InternalServerError", "param": None}
        return _envelope({**info, "code": 500}, settings)

    return event
