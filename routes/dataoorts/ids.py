"""Ids and the clock (tests pin them: patch this module's functions)."""

from __future__ import annotations

import time
import uuid


def new_id() -> str:
    """Id of a chat.completion ``result`` (only with ``result_shape: chat_completion``)."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())
