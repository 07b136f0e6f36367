"""Ids and the clock (tests pin them: patch this module's functions)."""

from __future__ import annotations

import datetime as dt
import secrets
import string
import time

CALL_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_call_id() -> str:
    """Ollama's tool-call id: ``call_`` and 8 characters of ``[a-z0-9]``."""
    return "call_" + "".join(secrets.choice(CALL_ID_ALPHABET) for _ in range(8))


def now_ns() -> int:
    """The wall clock in nanoseconds (``created_at``)."""
    return time.time_ns()


def rfc3339(ns: int) -> str:
    """Go's ``time.Time`` in UTC as JSON writes it (RFC 3339, nanoseconds without trailing zeros)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def created_at() -> str:
    return rfc3339(now_ns())
