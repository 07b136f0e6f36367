"""The document store's contract, its bounds and the error mapping every backend shares."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from server.errors import ConfigError, StoreUnavailableError
from server.paths import cache_root

if TYPE_CHECKING:
    from server.settings import StoreSettings

log = logging.getLogger("server.store")

T = TypeVar("T")

# Size bound: past ``max_bytes`` the oldest documents go until the rest fit in this share of it.
SIZE_TARGET = 0.9
DEFAULT_FILE = "state.sqlite3"
# Seconds ``open`` may take (connecting, creating the schema, the first eviction) before start-up fails.
OPEN_TIMEOUT_S = 30.0


@dataclass(slots=True)
class StoredDoc:
    id: str
    created_at: float  # epoch seconds
    doc: dict[str, Any]  # JSON-serialisable


@dataclass(frozen=True, slots=True)
class Bounds:
    """How much a store keeps: documents younger than ``max_age_s``, at most ``max_bytes`` of encoded documents.
    Both apply on open, then on a write at most every ``evict_interval_s``; reads never return an expired one."""

    max_age_s: float = 30 * 86400
    max_bytes: int = 1024**3
    evict_interval_s: float = 60.0

    @property
    def size_target(self) -> int:
        return int(self.max_bytes * SIZE_TARGET)

    def oldest_kept(self, now: float | None = None) -> float:
        """The earliest ``created_at`` still within the age bound."""
        return (time.time() if now is None else now) - self.max_age_s


class DocumentStore(Protocol):
    """JSON documents by id. Every operation is bounded by the store's timeout; a failure or a timeout raises
    ``StoreUnavailableError`` (503), never a backend exception."""

    async def open(self) -> None:
        """Create the schema or file (idempotent) and apply the bounds; ``ConfigError`` when it cannot."""

    async def put(self, doc_id: str, doc: dict[str, Any], *, created_at: float) -> None:
        """Insert or replace ``doc``; a replaced document keeps its first ``created_at``."""

    async def get(self, doc_id: str) -> StoredDoc | None:
        """The document, or None when it is missing or past the age bound."""

    async def delete(self, doc_id: str) -> bool:
        """Remove the document; True when there was one."""

    async def evict(self) -> int:
        """Apply the age and size bounds now; the number of documents removed."""

    async def close(self) -> None: ...


class EvictionClock:
    """When the next write should apply the bounds: at most every ``interval_s`` seconds."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._last = time.monotonic()

    def done(self) -> None:
        self._last = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self._last >= self._interval_s


def size_eviction_cutoff(total: int, bounds: Bounds) -> int | None:
    """Bytes to remove (oldest first) when ``total`` is past ``max_bytes``; None when it is within."""
    return total - bounds.size_target if total > bounds.max_bytes else None


def redacted_url(url: str) -> str:
    """``url`` without its password, in the user part or a ``password=`` parameter (for logs and printed settings)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and all(k != "password" for k, _ in pairs):
        return url
    if parts.password is not None:
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}")
    query = [(k, "***" if k == "password" else v) for k, v in pairs]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*")))


async def guarded(op: Awaitable[T], *, timeout_s: float, what: str, errors: tuple[type[BaseException], ...]) -> T:
    """Await ``op`` within ``timeout_s``; a timeout or one of the backend's ``errors`` becomes a 503 (the details go
    to the log, not to the client)."""
    try:
        return await asyncio.wait_for(op, timeout_s)
    except TimeoutError as exc:
        log.error("document store: %s took longer than %gs", what, timeout_s)
        raise StoreUnavailableError(f"The document store did not answer within {timeout_s:g}s.") from exc
    except errors as exc:
        log.error("document store: %s failed: %s: %s", what, type(exc).__name__, exc)
        raise StoreUnavailableError("The document store is unavailable.") from exc


def default_store_path() -> Path:
    """The SQLite file used when ``store.url`` is unset: ``state.sqlite3`` in the cache folder."""
    return cache_root() / DEFAULT_FILE


def sqlite_path(url: str) -> Path:
    """The file of ``sqlite:///abs/path`` (always absolute: a relative path would depend on the working folder)."""
    return Path("/" + url.removeprefix("sqlite://").lstrip("/"))


def open_store(settings: StoreSettings) -> DocumentStore:
    """The store ``settings.url`` names, not yet opened. A PostgreSQL URL needs the ``postgres`` extra."""
    bounds = Bounds(settings.max_age_s, settings.max_bytes, settings.evict_interval_s)
    url = settings.url
    if url == "memory":
        from server.store.memory import MemoryStore

        return MemoryStore(bounds)
    if url is None or url.startswith("sqlite://"):
        from server.store.sqlite import SqliteStore

        path = default_store_path() if url is None else sqlite_path(url)
        return SqliteStore(path, bounds, op_timeout_s=settings.op_timeout_s)
    try:
        from server.store.postgres import PostgresStore
    except ModuleNotFoundError as exc:
        if exc.name not in ("psycopg", "psycopg_pool"):
            raise
        raise ConfigError(
            f"store.url names PostgreSQL but its driver is not installed ({exc.name}): "
            "pip install 'gptoss-server[postgres]'."
        ) from exc
    return PostgresStore(url, bounds, op_timeout_s=settings.op_timeout_s)
