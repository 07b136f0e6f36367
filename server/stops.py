"""Stop sequences on the answer text: the text before the earliest stop is kept, the stop itself is not.

Up to ``len(longest stop) - 1`` characters are held back, so a stop split across tokens is still
found and never half-sent.
"""

from __future__ import annotations


class StopMatcher:
    __slots__ = ("_buffer", "_hold", "_include", "_stops")

    def __init__(self, stops: list[str], *, include: bool = False) -> None:
        """``include``: the stop string found is kept at the end of the text (vLLM's ``include_stop_str_in_output``)."""
        self._stops = [s for s in stops if s]
        self._include = include
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._buffer = ""

    def __bool__(self) -> bool:
        return bool(self._stops)

    def feed(self, text: str) -> tuple[str, str | None]:
        """Returns (text safe to send, the stop sequence hit or None)."""
        buffer = self._buffer + text
        best = -1
        hit: str | None = None
        for stop in self._stops:
            index = buffer.find(stop)
            if index != -1 and (best == -1 or index < best):
                best, hit = index, stop
        if hit is not None:
            self._buffer = ""
            return buffer[: best + len(hit) if self._include else best], hit
        if self._hold and len(buffer) > self._hold:
            self._buffer = buffer[-self._hold :]
            return buffer[: -self._hold], None
        if self._hold:
            self._buffer = buffer
            return "", None
        return buffer, None

    def flush(self) -> str:
        out, self._buffer = self._buffer, ""
        return out
