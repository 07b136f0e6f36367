"""Server-sent events as Anthropic frames them: ``event: <type>`` then ``data: <json>``; no terminator after the
last event (``message_stop``, or ``error`` for an answer cut short). The ping is written as Anthropic writes it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from routes.anthropic.response import Event
from server.http.jsonio import dumps

_PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def frame(event: Event) -> bytes:
    if event.get("type") == "ping":
        return _PING
    return b"event: " + event["type"].encode() + b"\ndata: " + dumps(event) + b"\n\n"


async def encode(events: AsyncIterator[Event]) -> AsyncIterator[bytes]:
    async for event in events:
        yield frame(event)
