"""The HTTP/1.1 protocol the server runs: uvicorn's httptools protocol with limits at the socket.

uvicorn bounds neither the request head nor the time a client takes to send it, and httptools joins the pieces of
a header value that arrive in separate reads by concatenation (quadratic: a 96 MiB header took ~30 s of the event
loop). ``GuardedHttpProtocol`` adds, from the ``server`` settings:

- ``max_header_bytes``: a head (request line and headers) still incomplete past this many bytes is answered 431 and
  the connection closed, after at most one more read of parsing; a complete head over the limit is answered 431 too;
- ``max_headers``: the header field past this count is answered 431 at once;
- ``header_timeout_s``: a connection that has not completed a request head this many seconds after connecting (or
  after the first byte of a later request) is answered 408 (or just closed if it sent nothing);
- ``body_timeout_s``: a request body not complete this many seconds after its head is answered 408 and closed;
- ``max_connections``: a connection over the cap is answered 503 and closed at once;
- malformed framing: see ``server/http/framing.py`` (the owning route's 400 when the request line was readable,
  else a plain 400 and close).

Each request's scope also carries the connection's own ``send`` for streamed bodies, and a watch on the connection's
loss that stops a stream without a task reading ``receive`` (``server/http/streamed.py``).

Refusals made here are plain text (``connection: close``); the connection is then shut for writing and the rest
of the client's input discarded for at most ``LINGER_S`` seconds, so that the client reads the answer rather than a
reset. Idle keep-alive connections close after ``keep_alive_timeout_s`` (uvicorn's own ``timeout_keep_alive``).

It relies on these internals of uvicorn 0.54's ``HttpToolsProtocol`` (pinned in ``pyproject.toml``): the parser
callbacks ``on_message_begin``/``on_header``/``on_headers_complete``/``on_message_complete``, the attributes
``parser``, ``transport``, ``cycle`` (``response_started``/``response_complete``/``keep_alive``/``more_body``/
``disconnected``/``message_event``), ``connections``, ``server_state.default_headers``, ``url``, ``headers`` and
``scope``, and ``_unset_keepalive_if_required``; and on httptools raising ``HttpParserCallbackError`` when a
callback raises.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import TimerHandle
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from server.http.framing import mark_framing_error
from server.http.streamed import offer_body_send
from server.settings import ServerSettings

log = logging.getLogger(__name__)

# After a refusal: how long the rest of the client's input is read and dropped before the socket closes.
LINGER_S = 2.0


class _Refused(Exception):
    """Raised from a parser callback to stop parsing (httptools re-raises it as HttpParserCallbackError)."""


def _nothing() -> None:
    pass


class GuardedHttpProtocol(HttpToolsProtocol):
    """One connection. ``configured(settings)`` gives the subclass carrying a ``server`` section's limits."""

    limits: ClassVar[ServerSettings] = ServerSettings()
    _last_cap_warning: ClassVar[float] = float("-inf")

    @classmethod
    def configured(cls, settings: ServerSettings) -> type[GuardedHttpProtocol]:
        return type(cls.__name__, (cls,), {"limits": settings})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.limits
        self._max_head = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self._header_timeout = limits.header_timeout_s
        self._body_timeout = limits.body_timeout_s
        self._max_connections = limits.max_connections
        self._awaiting_head = True  # waiting for, or reading, a request head
        self._in_head = False  # between a message's first byte and its complete head
        self._in_body = False  # between a complete head and the end of its body
        self._head_bytes = 0
        self._header_count = 0
        self._completed = 0  # messages parsed so far
        self._feeding = 0  # size of the read being parsed
        self._refusal: tuple[int, str] | None = None  # set by a callback before it raises _Refused
        self._closing = False  # input is dropped from now on
        self._head_timer: TimerHandle | None = None
        self._body_timer: TimerHandle | None = None
        self._linger_timer: TimerHandle | None = None
        self._on_lost: Callable[[], None] | None = None  # a streamed response's disconnect callback
        self._lost = False  # the connection is gone

    # ---- connection ----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        over = len(self.connections) >= self._max_connections
        super().connection_made(transport)
        if over:
            now = self.loop.time()
            if now - GuardedHttpProtocol._last_cap_warning > 10:
                GuardedHttpProtocol._last_cap_warning = now
                log.warning("refusing connections: %d open (server.max_connections)", len(self.connections) - 1)
            self._refuse(503, "Too many open connections.")
            return
        self._head_timer = self.loop.call_later(self._header_timeout, self._on_head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)
        self._lost = True
        callback, self._on_lost = self._on_lost, None
        if callback is not None:
            callback()

    def _watch_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the connection is lost (the response in progress streams until then); at once when
        it is lost already (a client gone while its request was prepared)."""
        if self._lost:
            callback()
            return _nothing
        self._on_lost = callback

        def unwatch() -> None:
            if self._on_lost is callback:
                self._on_lost = None

        return unwatch

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._unset_keepalive_if_required()
        completed = self._completed
        self._feeding = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            if self._refusal is not None:
                self._refuse(*self._refusal)
            else:
                self._malformed(str(exc))
            return
        if self._awaiting_head:
            if self._completed == completed:  # no message ended in this read: all of it belongs to the head
                self._head_bytes += len(data)
            if self._head_bytes > self._max_head:
                self._refuse(431, "Request header fields too large.")
            elif self._head_timer is None and (self._in_head or self._head_bytes):
                self._head_timer = self.loop.call_later(self._header_timeout, self._on_head_timeout)
        elif self._in_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(self._body_timeout, self._on_body_timeout)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, msg)

    def _unsupported_upgrade_warning(self) -> None:
        """An ``Upgrade`` header is ignored (no WebSockets here): the request is served as plain HTTP."""

    # ---- parser callbacks ------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_head = True
        self._in_head = True
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._max_headers:
            self._refusal = (431, f"Too many header fields (limit {self._max_headers}).")
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_bytes + self._feeding > self._max_head:  # the head may have come whole in one large read
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self._max_head:
                self._refusal = (431, "Request header fields too large.")
                raise _Refused
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()  # may raise (an unparsable URL): the head is then refused as malformed
        if self.cycle is not None and self.cycle.scope is self.scope:  # the cycle this head just made
            # streamed bodies' short way, and their stop on a lost connection (``server/http/streamed.py``)
            offer_body_send(self.scope, self.cycle.send, self._watch_disconnect)
        self._awaiting_head = self._in_head = False
        self._in_body = True

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._completed += 1
        self._in_body = False
        self._awaiting_head = True
        self._head_bytes = 0
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    # ---- refusals --------------------------------------------------------------------------------------------

    def _busy(self) -> bool:
        """A response is being served on this connection (never interleave another one with it)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _finish_current(self) -> None:
        """Serve the response in progress, then close; drop all further input."""
        self._closing = True
        self._cancel_timers()
        self.cycle.keep_alive = False

    def _refuse(self, status: int, message: str) -> None:
        """A plain-text answer and close; after a response in progress instead, if there is one."""
        if self._busy():
            self._finish_current()
        else:
            self._answer(status, message)

    def _answer(self, status: int, message: str) -> None:
        body = message.encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(content))
        self._linger_close()

    def _linger_close(self) -> None:
        """Shut the socket for writing and drop input until the client closes, or ``LINGER_S`` at most."""
        self._closing = True
        self._cancel_timers()
        self._unset_keepalive_if_required()
        if self.transport.is_closing():
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger_timer = self.loop.call_later(LINGER_S, self.transport.close)

    def _malformed(self, message: str) -> None:
        """The parser refused the input: the owning route's 400 when the request line was readable, else plain."""
        if self._in_body:  # the body's framing broke: it ends here, and the app reading it raises the 400
            self._closing = True
            self._cancel_timers()
            cycle = self.cycle
            if cycle.response_complete:
                self._linger_close()
                return
            mark_framing_error(cycle.scope, message)  # type: ignore[arg-type]
            cycle.more_body = False
            cycle.keep_alive = False
            cycle.message_event.set()
            return
        if self._busy():
            self._finish_current()
            return
        if not self._in_head or self.parser.get_http_version() not in ("1.0", "1.1"):  # a malformed request line
            self._refuse(400, "Invalid HTTP request received.")
            return
        try:
            httptools.parse_url(self.url)
        except httptools.HttpParserError:
            self._refuse(400, "Invalid HTTP request received.")
            return
        mark_framing_error(self.scope, message)  # type: ignore[arg-type]
        self._closing = True
        self._cancel_timers()
        HttpToolsProtocol.on_headers_complete(self)  # the app is called with what was read, and no body
        self.cycle.more_body = False
        self.cycle.keep_alive = False

    # ---- timeouts --------------------------------------------------------------------------------------------

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self._closing or self.transport.is_closing():
            return
        if self._busy():  # part of a next request arrived during a response: close after that response
            self._finish_current()
        elif self._in_head or self._head_bytes:
            self._refuse(408, "Request header timeout.")
        else:
            self._closing = True
            self.transport.close()

    def _on_body_timeout(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self._closing or not self._in_body or cycle is None or self.transport.is_closing():
            return
        if cycle.response_started:  # answered without reading the whole body (e.g. a 401): close
            if cycle.response_complete:
                self._linger_close()
            else:
                self._finish_current()
            return
        cycle.disconnected = True  # the app waiting for the body sees a disconnect; its answer is dropped
        cycle.message_event.set()
        self._answer(408, "Request body timeout.")
