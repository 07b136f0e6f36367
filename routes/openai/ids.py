"""Ids and the clock (tests pin them: patch this module's functions)."""

from __future__ import annotations

import time
import uuid


def new_id() -> str:
    """vLLM's ``chatcmpl-`` + a dashless uuid4 (tests pin it)."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> float:
    """The clock (tests pin it)."""
    return time.time()
