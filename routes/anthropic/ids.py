"""Ids (tests pin them: patch this module's functions)."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """Anthropic's shape: a type prefix (``msg``, ``toolu``), ``01`` and 22 base-62 characters."""
    return f"{prefix}_01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))
