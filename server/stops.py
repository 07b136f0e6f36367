"""Stop sequences on the answer text: the text before the earliest stop is kept, the stop itself is not.

Up to ``len(longest stop) - 1`` characters are held back, so a stop split across tokens is still
found and never half-sent. Text fed as ``protected`` (what the first ``min_tokens`` tokens wrote) can hold the start
of a stop but never its end: vLLM checks stop strings only in the text of later tokens (its detokenizer's
``update``, ``stop_check_offset``), so a stop string is not matched before ``min_tokens`` tokens are out.
"""

from __future__ import annotations


class StopMatcher:
    __slots__ = ("_buffer", "_hold", "_include", "_protected", "_stops")

    def __init__(self, stops: list[str], *, include: bool = False) -> None:
        """``include``: the stop string found is kept at the end of the text (vLLM's ``include_stop_str_in_output``)."""
        self._stops = [s for s in stops if s]
        self._include = include
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._buffer = ""
        self._protected = 0  # the buffer's leading characters that no stop may end in

    def __bool__(self) -> bool:
        return bool(self._stops)

    def feed(self, text: str, protected: int = 0) -> tuple[str, str | None]:
        """Returns (text safe to send, the stop sequence hit or None). No stop may end within the first ``protected``
        characters of ``text`` (nor in protected text fed earlier)."""
        buffer = self._buffer + text
        floor = len(self._buffer) + protected if protected else self._protected
        best = -1
        hit: str | None = None
        for stop in self._stops:
            index = buffer.find(stop, max(0, floor - len(stop) + 1))
            if index != -1 and (best == -1 or index < best):
                best, hit = index, stop
        if hit is not None:
            self._buffer, self._protected = "", 0
            return buffer[: best + len(hit) if self._include else best], hit
        if self._hold and len(buffer) > self._hold:
            self._buffer = buffer[-self._hold :]
            self._protected = max(0, floor - (len(buffer) - self._hold))
            return buffer[: -self._hold], None
        if self._hold:
            self._buffer, self._protected = buffer, floor
            return "", None
        return buffer, None

    def flush(self) -> str:
        out, self._buffer, self._protected = self._buffer, "", 0
        return out
