"""The contract of a wire API package: what its ``__init__.py`` exports as ``PROVIDER``.

A package holds its own settings section and its HTTP side. The HTTP side (``router.py``) is imported only when an
app is built, so the settings tree can be composed from the registry (``--print-config``, tests of settings) without
importing the web framework or the run-time core. ``router.py`` provides:

- ``router(ctx) -> APIRouter``: its paths, with its auth dependency and an error route class;
- ``render_error(exc, request) -> Response``: a typed core error in its own envelope;
- ``prefixes(ctx) -> tuple[str, ...]``: the path prefixes it owns (unknown paths and wrong methods under them get its
  envelope);
- optionally ``claims(ctx) -> tuple[Claim, ...]``: paths it answers although another wire API owns them, for requests
  that carry a header only its own clients send (see ``Claim``);
- optionally ``sdk_base(ctx) -> str``: the path its client library's base URL takes, where that is not its first
  prefix (the offline testing kit hands it to client test suites).

Claims let two wire APIs share a path whose shape differs between them (``GET /v1/models``: one list shape for OpenAI
clients, another for clients of an API that sends its own version header). The claiming package builds the routes of
a claim with ``error_route_class(render_error, gate=claim.carried_by)``: such a route matches only requests carrying
one of the claim's headers, and the app puts every gated route before the others, so a claimed request reaches the
claimer and any other request falls through to the path's usual owner. ``owner_of`` consults the claims too, so the
error envelope of an unmatched claimed path and the request log's ``api`` follow the same rule.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from server.section import ProviderSection

if TYPE_CHECKING:
    from fastapi import APIRouter, Request, Response

    from server.context import ServerContext
    from server.errors import ServerError
    from server.settings import CoreSettings

S = TypeVar("S", bound=ProviderSection)


@dataclass(frozen=True, slots=True)
class Claim:
    """Requests on ``paths`` (each the path itself or a prefix of segments under it) that carry any of ``headers``
    (lower-case names) belong to the claiming wire API, whoever owns the paths otherwise."""

    paths: tuple[str, ...]
    headers: tuple[str, ...]

    def covers(self, path: str) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths)

    def carried_by(self, headers: Mapping[str, str]) -> bool:
        return any(name in headers for name in self.headers)

    def applies(self, path: str, headers: Mapping[str, str]) -> bool:
        return self.covers(path) and self.carried_by(headers)


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

    def claims(self, ctx: ServerContext) -> tuple[Claim, ...]:
        """The paths it claims by header (none unless its router module defines ``claims``)."""
        hook = getattr(self.http_side(), "claims", None)
        return tuple(hook(ctx)) if hook is not None else ()

    def sdk_base(self, ctx: ServerContext) -> str:
        """The path a client library's base URL takes for this wire API (its router module's ``sdk_base``, where it
        defines one; else its first prefix)."""
        hook = getattr(self.http_side(), "sdk_base", None)
        return str(hook(ctx)) if hook is not None else self.http_side().prefixes(ctx)[0]


def section_of(ctx: ServerContext, name: str, cls: type[S]) -> S:
    """The settings section ``providers.<name>``, typed as the package's own class."""
    section = ctx.settings.providers.section(name)
    if not isinstance(section, cls):
        raise TypeError(f"providers.{name} is a {type(section).__name__}, not a {cls.__name__}")
    return section


def owner_of(
    path: str, ctx: ServerContext, wire_apis: tuple[Provider, ...], headers: Mapping[str, str] | None = None
) -> Provider | None:
    """The enabled wire API claiming the request (``path`` and ``headers``), else the one with the longest prefix
    matching ``path``."""
    enabled = [p for p in wire_apis if p.enabled(ctx)]
    if headers is not None:
        for provider in enabled:
            if any(claim.applies(path, headers) for claim in provider.claims(ctx)):
                return provider
    best: tuple[int, Provider] | None = None
    for provider in enabled:
        for prefix in provider.http_side().prefixes(ctx):
            under = path == prefix or path.startswith(prefix.rstrip("/") + "/")
            if under and (best is None or len(prefix) > best[0]):
                best = (len(prefix), provider)
    return best[1] if best else None


class Owners:
    """``owner_of`` for one server, whose settings do not change while it serves: remembered by path and by which
    claim headers a request carries (all that the answer depends on)."""

    CACHE_SIZE = 4096  # (path, claim headers) answers kept

    def __init__(self, ctx: ServerContext, wire_apis: tuple[Provider, ...]) -> None:
        names = {name for p in wire_apis if p.enabled(ctx) for claim in p.claims(ctx) for name in claim.headers}
        self._claim_headers = tuple(sorted(names))

        @functools.lru_cache(maxsize=self.CACHE_SIZE)
        def owner(path: str, carried: tuple[str, ...]) -> Provider | None:
            return owner_of(path, ctx, wire_apis, dict.fromkeys(carried, ""))

        self._owner = owner

    def of(self, path: str, headers: Mapping[str, str]) -> Provider | None:
        return self._owner(path, tuple(name for name in self._claim_headers if name in headers))
