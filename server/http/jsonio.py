"""Compact JSON bytes: insertion-ordered keys, raw UTF-8, no spaces (as llama.cpp, vLLM and Node emit)."""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_OPTIONS)


def sse_event(value: Any) -> bytes:
    """One ``data: <json>\\n\\n`` server-sent event."""
    return b"data: " + orjson.dumps(value, option=_OPTIONS) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
