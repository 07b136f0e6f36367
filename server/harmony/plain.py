"""Decode generated token ids as plain text, with no harmony parsing: what vLLM's detokenizer returns for a raw
prompt (``skip_special_tokens``: control tokens such as ``<|channel|>`` leave no text, so ``<|channel|>final
<|message|>Hi`` reads ``finalHi``). A character split across tokens is held back until its last byte arrives; bytes
that never make one become U+FFFD.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from server.harmony.encoding import FIRST_SPECIAL_ID, get_encoding
from server.types import Delta


class PlainDecoder:
    """The output as text: every delta's text is answer text (``content``)."""

    __slots__ = ("_bytes", "_skip", "_text")

    has_tool_calls = False
    reasoning_tokens = 0

    def __init__(self, *, skip_special_tokens: bool = True) -> None:
        """``skip_special_tokens=False``: control tokens are spelled out (``<|channel|>``), as vLLM's detokenizer
        writes them with that sampling parameter."""
        self._bytes = get_encoding()._inner.decode_bytes
        self._skip = skip_special_tokens
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_ids: Sequence[int]) -> Delta:
        plain = [t for t in token_ids if t < FIRST_SPECIAL_ID] if self._skip else list(token_ids)
        return Delta(content=self._text.decode(self._bytes(plain)) if plain else "")

    def finish(self) -> Delta:
        return Delta(content=self._text.decode(b"", final=True))


def full_text(token_ids: Sequence[int]) -> str:
    """Token ids as one text, special tokens spelled out (``<|start|>``): how vLLM's tokenizer decodes a prompt given
    as token ids when it is echoed."""
    return get_encoding()._inner.decode_bytes(list(token_ids)).decode("utf-8", errors="replace")
