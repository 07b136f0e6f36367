"""The remembered tokens of long message texts: the same tokens as encoding afresh, within their budget."""

from __future__ import annotations

import sys
from array import array

import pytest
from openai_harmony import Role

from server.errors import InvalidRequestError
from server.harmony.encoding import encode_ordinary, get_encoding
from server.harmony.render import HarmonyRenderer, RenderOptions
from server.harmony.textcache import MIN_CHARS, TextTokenCache
from server.types import ChatMessage, ChatRequest, ToolCall


def _text(i: int, size: int = 2000) -> str:
    return (f"Turn {i}: naïve <|start|> 日本語 🙂 output line.\n" * size)[:size]


def _cost(text: str) -> int:
    """What keeping ``text`` costs: the text and its tokens (4 bytes each, in an array)."""
    return sys.getsizeof(text) + sys.getsizeof(array("I", encode_ordinary(text)))


def test_a_text_seen_again_comes_from_memory_with_the_same_tokens() -> None:
    cache = TextTokenCache(1 << 20)
    text = _text(1)
    first = cache.encode(text)
    assert list(first) == encode_ordinary(text)
    assert (len(cache), cache.bytes) == (1, _cost(text))
    again = cache.encode(text[:1] + text[1:])  # an equal string, not the same object
    assert list(again) == encode_ordinary(text)
    assert (len(cache), cache.bytes) == (1, _cost(text))


def test_short_texts_and_texts_over_the_budget_are_not_kept() -> None:
    text = _text(2)
    short = "x" * (MIN_CHARS - 1)
    for budget in (sys.getsizeof(text), _cost(text) - 1):  # the text alone fills it; the text and its tokens pass it
        cache = TextTokenCache(budget)
        assert list(cache.encode(short)) == encode_ordinary(short)
        assert list(cache.encode(text)) == encode_ordinary(text)
        assert len(cache) == 0
    cache = TextTokenCache(_cost(text))
    cache.encode(text)
    assert len(cache) == 1
    off = TextTokenCache(0)
    off.encode(_text(3))
    assert len(off) == 0


def test_the_least_recently_used_text_goes_first_and_the_budget_holds() -> None:
    a, b, c = _text(1), _text(2), _text(3)
    cache = TextTokenCache(_cost(a) + _cost(b) + _cost(c) - 1)  # two texts fit, three do not
    cache.encode(a)
    cache.encode(b)
    cache.encode(a)  # a is now the most recently used
    cache.encode(c)  # b goes
    assert cache.bytes == _cost(a) + _cost(c) <= cache.max_bytes
    kept = cache._tokens
    assert list(kept) == [a, c]


def test_a_long_text_that_cannot_be_encoded_raises_and_is_not_kept() -> None:
    cache = TextTokenCache(1 << 20)
    bad = _text(1) + "\ud800"
    with pytest.raises(ValueError):
        cache.encode(bad)
    assert len(cache) == 0
    renderer = HarmonyRenderer(RenderOptions(conversation_start_date="2026-01-15"))
    with pytest.raises(InvalidRequestError, match="cannot be rendered"):
        renderer.render(ChatRequest([ChatMessage("user", bad)]))


def test_a_conversation_growing_turn_by_turn_renders_as_harmony_renders_it_whole() -> None:
    """An agent's loop: every turn resends the whole conversation plus a tool call and its long output. Each render
    equals harmony's rendering of the whole conversation, and each long text is kept once."""
    renderer = HarmonyRenderer(RenderOptions(conversation_start_date="2026-01-15"))
    enc = get_encoding()
    messages = [ChatMessage("system", _text(0, 3000)), ChatMessage("user", "Read the logs. " + _text(1))]
    for turn in range(6):
        request = ChatRequest(list(messages))
        whole = enc.render_conversation_for_completion(renderer.build_conversation(request), Role.ASSISTANT)
        assert renderer.render(request) == list(whole), f"turn {turn}"
        call = ToolCall(f"c{turn}", "read_log", f'{{"part": {turn}}}')
        messages += [
            ChatMessage("assistant", None, reasoning="Read on.", tool_calls=[call]),
            ChatMessage("tool", _text(100 + turn, 4000), tool_call_id=call.id),
        ]
    # the user's message and five tool outputs (the developer message is cached as a whole, elsewhere)
    assert len(renderer.texts) == 1 + 5
