"""One record per request, filled as it is served and logged once when its response ends.

The HTTP layer opens the record (``server/http/requestlog.py``); the core fills in what only it knows (tokens, time
to first token, finish reason) through ``current()``. A record holds counts and timings only: never prompt text,
outputs or keys.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import time
from dataclasses import dataclass, field, fields

from server.types import Finish

log = logging.getLogger("server.requests")


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    method: str
    path: str
    api: str | None = None  # the wire API that answered
    key: str | None = None  # the API key's name (never the key)
    status: int | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    finish_reason: str | None = None
    fault: str | None = None  # the kind of an injected fault (testing.faults_enabled)
    started: float = field(default_factory=time.time, repr=False)

    def finished(self, finish: Finish) -> None:
        """What the core knows once a generation ends. A request answered by several generations (``n`` choices of
        one prompt) counts its prompt once, the completion tokens of all, and the earliest first token."""
        usage = finish.usage
        first = self.completion_tokens is None
        self.completion_tokens = (self.completion_tokens or 0) + usage.completion_tokens
        if first:
            self.prompt_tokens, self.cached_tokens = usage.prompt_tokens, usage.cached_tokens
        self.finish_reason = finish.reason
        if finish.timings.first_token is not None:
            ttft = round((finish.timings.first_token - self.started) * 1000, 1)
            self.ttft_ms = ttft if self.ttft_ms is None else min(self.ttft_ms, ttft)

    def fields(self) -> dict[str, object]:
        values = {name: getattr(self, name) for name in _LOGGED}
        if (process := os.environ.get("GPTOSS_API_PROCESS")) is not None:  # one of several API processes
            values["process"] = int(process)
        return values


_LOGGED = tuple(f.name for f in fields(RequestRecord) if f.name != "started")
_current: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("request_record", default=None)


def current() -> RequestRecord | None:
    return _current.get()


def bind(record: RequestRecord) -> contextvars.Token[RequestRecord | None]:
    return _current.set(record)


def unbind(token: contextvars.Token[RequestRecord | None]) -> None:
    _current.reset(token)


def close(record: RequestRecord) -> None:
    """The response has ended: its duration."""
    if record.duration_ms is None:
        record.duration_ms = round((time.time() - record.started) * 1000, 1)


def emit(record: RequestRecord, fmt: str) -> None:
    """The one line for this request: ``key=value`` pairs (values JSON-quoted, so no request data can forge a line)
    or one JSON object."""
    close(record)
    if not log.isEnabledFor(logging.INFO):
        return
    values = record.fields()
    if fmt == "json":
        log.info(json.dumps({"event": "request", **values}, ensure_ascii=False, separators=(",", ":")))
        return
    parts = [
        f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, str) else v}"
        for k, v in values.items()
        if v is not None
    ]
    log.info("request %s", " ".join(parts))
