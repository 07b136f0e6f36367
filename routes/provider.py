"""The contract of a wire API package: what its ``__init__.py`` exports as ``PROVIDER``.

A package holds its own settings section and its HTTP side. The HTTP side (``router.py``) is imported only when an
app is built, so the settings tree can be composed from the registry (``--print-config``, tests of settings) without
importing the web framework or the run-time core. ``router.py`` provides:

- ``router(ctx) -> APIRouter``: its paths, with its auth dependency and an error route class;
- ``render_error(exc, request) -> Response``: a typed core error in its own envelope;
- ``prefixes(ctx) -> tuple[str, ...]``: the path prefixes it owns (unknown paths and wrong methods under them get its
  envelope).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from server.section import ProviderSection

if TYPE_CHECKING:
    from fastapi import APIRouter, Request, Response

    from server.context import ServerContext
    from server.errors import ServerError
    from server.settings import CoreSettings

S = TypeVar("S", bound=ProviderSection)


class WireHttp(Protocol):
    """What a package's ``router.py`` module provides."""

    def router(self, ctx: ServerContext) -> APIRouter: ...

    def render_error(self, exc: ServerError, request: Request | None = None) -> Response: ...

    def prefixes(self, ctx: ServerContext) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Provider:
    name: str  # the settings key (``providers.<name>``) and the name in logs and the banner
    settings: type[ProviderSection]
    http: str  # the dotted name of the package's router module
    paths: str  # its main paths, for the start-up banner

    def http_side(self) -> WireHttp:
        return cast(WireHttp, importlib.import_module(self.http))

    def section(self, settings: CoreSettings) -> ProviderSection:
        return settings.providers.section(self.name)

    def enabled(self, ctx: ServerContext) -> bool:
        return self.section(ctx.settings).enabled


def section_of(ctx: ServerContext, name: str, cls: type[S]) -> S:
    """The settings section ``providers.<name>``, typed as the package's own class."""
    section = ctx.settings.providers.section(name)
    if not isinstance(section, cls):
        raise TypeError(f"providers.{name} is a {type(section).__name__}, not a {cls.__name__}")
    return section


def owner_of(path: str, ctx: ServerContext, wire_apis: tuple[Provider, ...]) -> Provider | None:
    """The enabled wire API with the longest prefix matching ``path``."""
    best: tuple[int, Provider] | None = None
    for provider in wire_apis:
        if not provider.enabled(ctx):
            continue
        for prefix in provider.http_side().prefixes(ctx):
            under = path == prefix or path.startswith(prefix.rstrip("/") + "/")
            if under and (best is None or len(prefix) > best[0]):
                best = (len(prefix), provider)
    return best[1] if best else None
