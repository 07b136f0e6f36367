"""One module per wire API. ``PROVIDERS`` is the explicit registry the app mounts."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from fastapi import APIRouter

from server.context import ServerContext


class Provider(NamedTuple):
    name: str
    enabled: Callable[[ServerContext], bool]
    router: Callable[[ServerContext], APIRouter]
    paths: str


def _registry() -> tuple[Provider, ...]:
    from routes import aimlapi, dat1, dataoorts, e2e, openai, oxen

    return (openai.PROVIDER, dataoorts.PROVIDER, oxen.PROVIDER, aimlapi.PROVIDER, e2e.PROVIDER, dat1.PROVIDER)


PROVIDERS: tuple[Provider, ...] = _registry()
