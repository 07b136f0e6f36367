"""Ids and the clock (tests pin them: patch this module's functions)."""

from __future__ import annotations

import secrets
import string
import time
import uuid

from routes.shared.ids import random_alnum

NANOID = string.ascii_letters + string.digits + "_-"  # nanoid's url-safe alphabet


def now() -> float:
    """The clock (tests pin it)."""
    return time.time()


def new_id(created: int) -> str:
    """OpenRouter's generation id, ``gen-<unix>-<20 alnum>`` (tests pin it)."""
    return f"gen-{created}-{random_alnum(20)}"


def new_request_id() -> str:
    """A 21-character nanoid, as in AI/ML API's error ``requestId``."""
    return "".join(secrets.choice(NANOID) for _ in range(21))


def new_inference_id() -> str:
    return str(uuid.uuid4())
