"""API-key checks for the HTTP routes (the keys themselves: ``server.keys``)."""

from __future__ import annotations

from starlette.requests import Request

from server import requestlog
from server.errors import AuthenticationError
from server.keys import KeyStore

__all__ = ["KeyStore", "bearer_token", "header_value", "require_key"]


def header_value(request: Request, name: str) -> str | None:
    """The value of header ``name`` without surrounding whitespace (RFC 9110: it is no part of the value).

    Sent more than once, its lines are combined as RFC 9110 section 5.3 does (joined by ", "), so two keys never
    pass as one: a proxy in front that reads the last line and this server must not disagree on who is asking.
    """
    values = request.headers.getlist(name)
    if not values:
        return None
    return ", ".join(v.strip(" \t") for v in values)


def bearer_token(request: Request) -> str | None:
    value = header_value(request, "authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip(" \t") or None


def require_key(store: KeyStore, presented: str | None, *, missing: str, invalid: str) -> None:
    """Raise unless ``presented`` is a configured key (auth off: anything passes); the key's name goes on the
    request's record, for logs, metrics and per-key limits."""
    if not store.enabled:
        return
    if not presented:
        raise AuthenticationError(missing, code="missing_api_key")
    name = store.identify(presented)
    if name is None:
        raise AuthenticationError(invalid, code="invalid_api_key")
    if (record := requestlog.current()) is not None:
        record.key = name
