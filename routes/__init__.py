"""One module per wire API. ``PROVIDERS`` is the explicit registry the app mounts."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from fastapi import APIRouter

from server.context import ServerContext
from server.http.routing import ErrorRenderer


class Provider(NamedTuple):
    name: str
    enabled: Callable[[ServerContext], bool]
    router: Callable[[ServerContext], APIRouter]
    paths: str
    # Path prefixes this provider owns: unknown paths and wrong methods under them get its error envelope.
    prefixes: Callable[[ServerContext], tuple[str, ...]] = lambda ctx: ()
    render_error: ErrorRenderer | None = None


def owner_of(path: str, ctx: ServerContext, providers: tuple[Provider, ...]) -> Provider | None:
    """The enabled provider with the longest prefix matching ``path``."""
    best: tuple[int, Provider] | None = None
    for provider in providers:
        if provider.render_error is None or not provider.enabled(ctx):
            continue
        for prefix in provider.prefixes(ctx):
            under = path == prefix or path.startswith(prefix.rstrip("/") + "/")
            if under and (best is None or len(prefix) > best[0]):
                best = (len(prefix), provider)
    return best[1] if best else None


def _registry() -> tuple[Provider, ...]:
    from routes import aimlapi, dat1, dataoorts, e2e, openai, oxen

    return (openai.PROVIDER, dataoorts.PROVIDER, oxen.PROVIDER, aimlapi.PROVIDER, e2e.PROVIDER, dat1.PROVIDER)


PROVIDERS: tuple[Provider, ...] = _registry()
