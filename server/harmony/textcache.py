"""The tokens of long message texts, remembered: a conversation is sent again whole on every turn.

A chat client, and an agent's loop above all, sends the whole conversation on every turn: the same instructions,
earlier answers and tool outputs, tens of thousands of tokens, then a little that is new. harmony tokenizes text at
some 10 MB/s (a 100,000-token context is about 50 ms of CPU, holding the GIL), so rendering each turn from scratch
costs more than everything else the server does for that request. Texts of at least ``MIN_CHARS`` characters keep
their tokens here, least recently used first out, within a budget of bytes: the text itself (the key: exact, no
digest that could collide) and its tokens as a compact ``array`` (4 bytes a token). English text costs about 2 bytes
a character, CJK text about 5, emoji-heavy text up to ~15.
"""

from __future__ import annotations

import sys
from array import array
from collections import OrderedDict
from collections.abc import Sequence

from server.harmony.encoding import encode_ordinary

MIN_CHARS = 1024  # ~250 tokens, ~25 us to encode


class TextTokenCache:
    """``encode_ordinary`` with memory for long texts, at most ``max_bytes`` of them (0: none)."""

    __slots__ = ("_bytes", "_tokens", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._tokens: OrderedDict[str, tuple[array[int], int]] = OrderedDict()  # text -> (tokens, bytes held)
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def bytes(self) -> int:
        """Memory held by the texts and tokens kept."""
        return self._bytes

    def encode(self, text: str) -> Sequence[int]:
        """``encode_ordinary(text)``: the same tokens, from memory when this text was seen recently. Read them only
        (a remembered text's tokens are the cache's own)."""
        if len(text) < MIN_CHARS or sys.getsizeof(text) >= self.max_bytes:
            return encode_ordinary(text)
        kept = self._tokens.get(text)
        if kept is not None:
            self._tokens.move_to_end(text)
            return kept[0]
        tokens = encode_ordinary(text)  # raises for a lone surrogate: nothing is kept then
        packed = array("I", tokens)
        size = sys.getsizeof(text) + sys.getsizeof(packed)
        if size > self.max_bytes:
            return tokens
        self._tokens[text] = (packed, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (_, freed) = self._tokens.popitem(last=False)
            self._bytes -= freed
        return tokens
