"""Thinking-block signatures: the reasoning text sealed with the server's key (``server/sealing.py``).

A thinking block's ``signature`` holds its text, so a client may send the block back with the text left out (Claude
Code asks for ``display: "omitted"``) and the reasoning still reaches the prompt; a block whose text differs from its
signature's, or whose signature this server did not seal, is a 400. The payload's key (``thinking``) keeps other
sealed payloads (a Responses reasoning item's) from passing as a signature.
"""

from __future__ import annotations

from collections.abc import Callable

from server.errors import InvalidRequestError
from server.sealing import Sealer


def sign(sealer: Sealer, thinking: str) -> str:
    return sealer.seal({"thinking": thinking})


def opener(sealer: Sealer) -> Callable[[str, str], str]:
    """``(signature, param) -> thinking``, raising a 400 that names the block."""

    def open_signature(signature: str, param: str) -> str:
        try:
            text = sealer.open(signature).get("thinking")
        except InvalidRequestError:
            text = None
        if not isinstance(text, str):
            raise InvalidRequestError(f"{param}: Invalid `signature` in `thinking` block", param=param)
        return text

    return open_signature
