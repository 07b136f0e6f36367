"""What the routes share at run time: settings, the chat service, the keys, the document store, readiness."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from server.engine.base import Engine
from server.keys import KeyStore
from server.sealing import Sealer
from server.service import ChatService
from server.settings import Settings
from server.store import DocumentStore


@dataclass(slots=True)
class Readiness:
    state: str = "starting"  # starting | loading | ready | failed | stopping
    detail: str = ""
    since: float = field(default_factory=time.time)

    def set(self, state: str, detail: str = "") -> None:
        self.state, self.detail, self.since = state, detail, time.time()


@dataclass(slots=True)
class ServerContext:
    settings: Settings
    engine: Engine
    service: ChatService
    keys: KeyStore
    # durable state for wire APIs that keep some (opened at start-up, closed at shutdown)
    store: DocumentStore
    # seals payloads a stateless client hands back later
    sealer: Sealer
    readiness: Readiness = field(default_factory=Readiness)
    started_at: float = field(default_factory=time.time)
    # Awaited at shutdown, after in-flight requests drained and before the engine and the store close (a wire API's
    # detached work registers here)
    shutdown_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Set when the server must stop on its own (the engine failed): the process's exit status.
    exit_code: int | None = None
