"""Ids and the clock (tests pin them: patch this module's functions)."""

from __future__ import annotations

import time
import uuid


def now() -> float:
    """The clock (tests pin it)."""
    return time.time()


def new_id() -> str:
    """vLLM's ``chatcmpl-`` + the gateway's ``X-Request-Id`` (a dashed uuid4) (tests pin it)."""
    return f"chatcmpl-{uuid.uuid4()}"


def new_completion_id() -> str:
    """vLLM's ``cmpl-`` + the gateway's ``X-Request-Id`` (a dashed uuid4), for ``/v1/completions`` (tests pin it)."""
    return f"cmpl-{uuid.uuid4()}"
