"""Random ids and token text, as the providers' id formats and logprob entries need them."""

from __future__ import annotations

import secrets
import string

from server.harmony.encoding import get_encoding

ALNUM = string.ascii_letters + string.digits


def random_alnum(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def token_text(token_id: int) -> str:
    """The text of one token id (as logprob entries show it)."""
    return get_encoding().decode([token_id])
