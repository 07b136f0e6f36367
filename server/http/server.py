"""The uvicorn server the CLI runs: graceful drain on SIGTERM/SIGINT, clean exit status."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from server.app import drain
from server.context import ServerContext


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
