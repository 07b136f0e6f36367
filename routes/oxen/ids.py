"""Ids and the clock (tests pin them: patch this module's functions)."""

from __future__ import annotations

import time
import uuid


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4()}"


def now() -> int:
    return int(time.time())
