"""Ids and the clock, as llama-server makes them (tests pin them: patch this module's functions)."""

from __future__ import annotations

import time

from routes.shared.ids import random_alnum


def now() -> int:
    """``created``: llama-server's ``time(0)``, read for every chunk (tests pin it)."""
    return int(time.time())


def new_id() -> str:
    """``chatcmpl-`` + 32 characters of [0-9A-Za-z] (llama-server's ``gen_chatcmplid``; tests pin it)."""
    return "chatcmpl-" + random_alnum(32)


def new_tool_call_id() -> str:
    """32 characters of [0-9A-Za-z] (llama-server's ``gen_tool_call_id``; tests pin it)."""
    return random_alnum(32)
