"""The process-wide harmony encoding, loaded offline once."""

from __future__ import annotations

import functools

from openai_harmony import HarmonyEncoding, HarmonyEncodingName, load_harmony_encoding

from server.harmony.vocab import ensure_vocab

RETURN = 200002
CONSTRAIN = 200003
CHANNEL = 200005
START = 200006
END = 200007
MESSAGE = 200008
CALL = 200012
# Tokens at which an assistant turn ends: <|return|> (final answer) and <|call|> (tool call).
STOP_TOKEN_IDS: tuple[int, ...] = (RETURN, CALL)
FIRST_SPECIAL_ID = 199998
VOCAB_SIZE = 201088  # o200k_harmony's ids, specials included


@functools.cache
def get_encoding() -> HarmonyEncoding:
    ensure_vocab()
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def encode_ordinary(text: str) -> list[int]:
    """``text`` as ordinary text, special-token spellings included: what harmony's renderer makes of a message's
    text (its tokenizer's ``encode_ordinary``; encoding with no special token allowed is the same). Raises
    ``UnicodeEncodeError`` (a ``ValueError``) for a lone surrogate, which harmony cannot render either."""
    return get_encoding()._inner.encode(text, [])  # type: ignore[no-any-return]


def encode_prompt(text: str) -> list[int]:
    """A raw prompt's text as gpt-oss's Hugging Face tokenizer reads it (and so vLLM): special-token text such as
    ``<|start|>`` is that control token, everything else ordinary text; no BOS is added."""
    return get_encoding().encode(text, allowed_special="all")
