"""The uvicorn server the CLI runs: the guarded HTTP protocol, graceful drain on SIGTERM/SIGINT, clean exit status.

``build_server(app)`` is the one place the production server is configured from the ``server`` settings; the CLI's
``serve`` runs it and the tests start the same (``tests/helpers.py``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from server.app import drain
from server.context import ServerContext
from server.http.protocol import GuardedHttpProtocol

log = logging.getLogger(__name__)

# File descriptors kept free beyond ``server.max_connections`` (listening socket, engine, logs, model files).
SPARE_FDS = 256


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT: new requests get 503, running ones get ``server.drain_timeout_s`` to finish, the rest are
    aborted (their streams end with an ``abort`` finish and the terminator); then uvicorn closes. The process exits
    with status 0 rather than re-raising the signal."""

    def __init__(self, config: uvicorn.Config, ctx: ServerContext) -> None:
        super().__init__(config)
        self.ctx = ctx

    async def on_tick(self, counter: int) -> bool:
        if self.ctx.exit_code is not None:  # the app asked to stop (the engine failed)
            return True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await drain(self.ctx, self.ctx.settings.server.drain_timeout_s)
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()  # handled: a clean exit, not death by signal


def build_server(app: FastAPI) -> DrainingServer:
    """The production server for ``app`` (from ``create_app``), configured by its ``server`` settings: address,
    HTTP limits and timeouts (``GuardedHttpProtocol``), keep-alive, drain. No WebSockets (an ``Upgrade`` header is
    ignored)."""
    ctx: ServerContext = app.state.ctx
    settings = ctx.settings.server
    ensure_fd_limit(settings.max_connections + SPARE_FDS)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        http=GuardedHttpProtocol.configured(settings),
        ws="none",
        lifespan="on",
        timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]  # a float works (call_later)
        timeout_graceful_shutdown=int(settings.drain_timeout_s) + 10,
        access_log=False,  # one structured line per request instead (server/http/requestlog.py)
    )
    return DrainingServer(config, ctx)


def ensure_fd_limit(needed: int) -> None:
    """Raise the soft open-file limit towards ``needed`` (up to the hard limit), so that the connection cap, not
    the file limit, is what refuses connections."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft < needed:
        log.warning(
            "open-file limit %d is below server.max_connections + %d (%d): connections may fail before the cap",
            soft,
            SPARE_FDS,
            needed,
        )
