"""Per-provider error rendering: a route class whose handler turns every error raised while serving
(typed core errors, FastAPI validation errors, anything unexpected) into that provider's envelope.

A route class made with a ``gate`` matches only requests whose headers pass it; the app tries such routes before all
others (``GATED``), so a path can be answered by one wire API for some clients and by its usual owner for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from server.errors import InternalError, InvalidRequestError, ServerError

log = logging.getLogger(__name__)

ErrorRenderer = Callable[[ServerError, Request], Response]
Gate = Callable[[Mapping[str, str]], bool]
GATED = "gated_by_headers"  # the attribute marking a gated route class


def validation_error(exc: RequestValidationError | Any) -> InvalidRequestError:
    """A readable 400 from pydantic/FastAPI validation errors; ``param`` names the first bad field."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    param = ".".join(loc) or None
    message = first.get("msg", "Invalid request.")
    if param:
        message = f"{message}: {param}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return InvalidRequestError(message, param=param)


def is_gated(route: BaseRoute) -> bool:
    return bool(getattr(route, GATED, False))


def error_route_class(render: ErrorRenderer, gate: Gate | None = None) -> type[APIRoute]:
    """Routes rendering their errors with ``render``; with ``gate``, matching only requests whose headers pass it."""

    class ProviderRoute(APIRoute):
        def matches(self, scope: Scope) -> tuple[Match, Scope]:
            if gate is not None and scope["type"] == "http" and not gate(Headers(scope=scope)):
                return Match.NONE, {}
            return super().matches(scope)

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    return await handler(request)
                except ServerError as exc:
                    return render(exc, request)
                except RequestValidationError as exc:
                    return render(validation_error(exc), request)
                except Exception:
                    log.exception("unhandled error on %s %s", request.method, request.url.path)
                    return render(InternalError("The server had an error while processing your request."), request)
                except BaseException as exc:
                    # harmony's Rust tokenizer reports a panic as pyo3's PanicException, a BaseException
                    if exc.__class__.__name__ != "PanicException":
                        raise
                    log.error("tokenizer panic on %s %s", request.method, request.url.path)
                    return render(InternalError("The server could not tokenize this request."), request)

            return guarded

    setattr(ProviderRoute, GATED, gate is not None)
    return ProviderRoute
