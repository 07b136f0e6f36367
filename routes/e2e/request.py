"""E2E's requests: vLLM's ``ChatCompletionRequest`` (``routes/openai/request.py``) and ``CompletionRequest``
(``routes/shared/completion_request.py``), whose validation errors vLLM reports as ``Bad Request``; the model named in
the body must be the one in the URL."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from routes.e2e.errors import BodyError
from routes.e2e.settings import E2ESettings
from routes.openai.request import ChatCompletionRequest
from server.errors import InvalidRequestError, ModelNotFoundError
from server.http.body import read_json_object
from server.http.routing import validation_error

M = TypeVar("M", bound=BaseModel)


async def read_request(request: Request, limit: int) -> ChatCompletionRequest:
    return await read_body(request, limit, ChatCompletionRequest)


async def read_body(request: Request, limit: int, model: type[M]) -> M:
    try:
        raw = await read_json_object(request, limit)
    except InvalidRequestError as exc:
        raise BodyError(exc.message, param=exc.param) from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = validation_error(exc)
        raise BodyError(err.message, param=err.param) from None


def check_model(settings: E2ESettings, model: str | None) -> str:
    if model is not None and model != settings.model_name:
        raise ModelNotFoundError(model)
    return settings.model_name
