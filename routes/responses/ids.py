"""Ids and the clock (tests pin them: patch this module's functions)."""

from __future__ import annotations

import secrets
import time


def new_id(prefix: str) -> str:
    """OpenAI's shape: a type prefix (``resp``, ``msg``, ``rs``, ``fc``) and 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


def now() -> float:
    """The clock (tests pin it)."""
    return time.time()
