"""The tokens of long message texts, remembered: a conversation is sent again whole on every turn.

A chat client, and an agent's loop above all, sends the whole conversation on every turn: the same instructions,
earlier answers and tool outputs, tens of thousands of tokens, then a little that is new. harmony tokenizes text at
some 10 MB/s (a 100,000-token context is about 50 ms of CPU, holding the GIL), so rendering each turn from scratch
costs more than everything else the server does for that request. Texts of at least ``MIN_CHARS`` characters keep
their tokens here, least recently used first out, within a budget of characters; shorter texts cost less to encode
than to look up. The key is the text itself (exact: no digest that could collide), the tokens are kept as a compact
``array`` (4 bytes a token), so a cached character costs about 2 bytes (1-4 for its key, ~1 for its tokens).
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Sequence

from server.harmony.encoding import encode_ordinary

MIN_CHARS = 1024  # ~250 tokens, ~25 us to encode


class TextTokenCache:
    """``encode_ordinary`` with memory for long texts, at most ``max_chars`` characters of them (0: none)."""

    __slots__ = ("_chars", "_tokens", "max_chars")

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._tokens: OrderedDict[str, array[int]] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def chars(self) -> int:
        """Characters of text whose tokens are kept."""
        return self._chars

    def encode(self, text: str) -> Sequence[int]:
        """``encode_ordinary(text)``: the same tokens, from memory when this text was seen recently."""
        size = len(text)
        if size < MIN_CHARS or size > self.max_chars:
            return encode_ordinary(text)
        kept = self._tokens.get(text)
        if kept is not None:
            self._tokens.move_to_end(text)
            return kept
        tokens = encode_ordinary(text)  # raises for a lone surrogate: nothing is kept then
        self._tokens[text] = array("I", tokens)
        self._chars += size
        while self._chars > self.max_chars:
            old, _ = self._tokens.popitem(last=False)
            self._chars -= len(old)
        return tokens
