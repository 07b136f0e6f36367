"""OpenAI's error envelope (the same as its chat API's: ``routes/openai/errors.py``) and a failed response's
``error`` object."""

from __future__ import annotations

from routes.openai.errors import error_body, render_error
from server.errors import ServerError

__all__ = ["error_body", "render_error", "response_error"]


def response_error(exc: ServerError) -> dict[str, str]:
    """The ``error`` of a failed response object: OpenAI's codes are few; everything of ours is ``server_error``
    except a refusal for load (``rate_limit_exceeded``)."""
    code = "rate_limit_exceeded" if exc.status == 429 else "server_error"
    return {"code": code, "message": exc.message}
