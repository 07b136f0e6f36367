"""A message built from the core's deltas: Anthropic's stream events as they happen, and the final message.

The non-streaming answer runs the same builder and keeps only the message, so it is the fold of the stream by
construction. A content block opens when the kind of output changes (thinking, text, a new tool call) and closes when
the next one opens or the turn ends; a thinking block's signature (its sealed text) comes as a ``signature_delta``
just before it closes, as Anthropic sends it.

Usage: Anthropic's ``input_tokens`` excludes the prompt tokens read from the cache, which are
``cache_read_input_tokens`` (the engine's prefix-cache hits; their sum is the whole prompt). Nothing is written to a
cache on request here, so ``cache_creation_input_tokens`` is 0. The cache hits are known once the prompt has been
processed: ``message_start`` counts the whole prompt as ``input_tokens``, and ``message_delta`` carries the split
(the SDKs take its totals over ``message_start``'s).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from routes.anthropic import ids
from routes.anthropic.errors import error_object
from routes.anthropic.request import Thinking
from server.types import Delta, Finish, ToolCallDelta, Usage

Event = dict[str, Any]
PING: Event = {"type": "ping"}


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "service_tier": "standard",
    }


def tool_input(arguments: str) -> dict[str, Any]:
    """The arguments the model wrote as the ``input`` object (``{}`` for text that is no JSON object)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def stop_reason(finish: Finish) -> tuple[str, str | None]:
    """``stop_reason`` and ``stop_sequence`` of a turn that ended normally."""
    if finish.reason == "length":
        return "max_tokens", None
    if finish.reason == "tool_calls":
        return "tool_use", None
    if isinstance(finish.stop_reason, str):
        return "stop_sequence", finish.stop_reason
    return "end_turn", None


class Output:
    """One message's content blocks and events. ``seal`` turns a thinking text into its signature; ``thinking`` says
    how reasoning appears (``none``: not at all; ``omitted``: empty blocks with their signature)."""

    def __init__(
        self, message_id: str, model: str, prompt_tokens: int, *, seal: Callable[[str], str], thinking: Thinking
    ) -> None:
        self.seal = seal
        self.thinking = thinking
        self.message: dict[str, Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_object(Usage(prompt_tokens, 0)),
        }
        self._kind = ""  # the open block's type: thinking | text | tool_use ("" when none is open)
        self._text: list[str] = []
        self._pinged = False

    @property
    def content(self) -> list[dict[str, Any]]:
        return self.message["content"]  # type: ignore[no-any-return]

    def opening(self) -> list[Event]:
        return [{"type": "message_start", "message": copy.deepcopy(self.message)}]

    # ---- blocks -------------------------------------------------------------------------------------

    def _open(self, block: dict[str, Any]) -> list[Event]:
        events = self._close()
        self._kind, self._text = block["type"], []
        events.append({"type": "content_block_start", "index": len(self.content), "content_block": dict(block)})
        self.content.append(block)
        if not self._pinged:  # Anthropic's streams ping once, after the first block opens
            self._pinged = True
            events.append(PING)
        return events

    def _delta(self, delta: dict[str, Any]) -> Event:
        return {"type": "content_block_delta", "index": len(self.content) - 1, "delta": delta}

    def _close(self) -> list[Event]:
        kind = self._kind
        if not kind:
            return []
        self._kind = ""
        block, text, events = self.content[-1], "".join(self._text), []
        if kind == "thinking":
            block["signature"] = self.seal(text)
            if self.thinking == "shown":
                block["thinking"] = text
            events.append(self._delta({"type": "signature_delta", "signature": block["signature"]}))
        elif kind == "text":
            block["text"] = text
        else:
            block["input"] = tool_input(text)
        events.append({"type": "content_block_stop", "index": len(self.content) - 1})
        return events

    def _open_call(self, part: ToolCallDelta) -> list[Event]:
        return self._open({"type": "tool_use", "id": ids.new_id("toolu"), "name": part.name or "", "input": {}})

    # ---- the run ------------------------------------------------------------------------------------

    def feed(self, delta: Delta) -> list[Event]:
        events: list[Event] = []
        if delta.reasoning and self.thinking != "none":
            if self._kind != "thinking":
                events += self._open({"type": "thinking", "thinking": "", "signature": ""})
            self._text.append(delta.reasoning)
            if self.thinking == "shown":
                events.append(self._delta({"type": "thinking_delta", "thinking": delta.reasoning}))
        if delta.content:
            if self._kind != "text":
                events += self._open({"type": "text", "text": ""})
            self._text.append(delta.content)
            events.append(self._delta({"type": "text_delta", "text": delta.content}))
        for part in delta.tool_calls:
            if part.id is not None or self._kind != "tool_use":
                events += self._open_call(part)
            if part.arguments:
                self._text.append(part.arguments)
                events.append(self._delta({"type": "input_json_delta", "partial_json": part.arguments}))
        return events

    def close(self, finish: Finish) -> list[Event]:
        """The last events: the open block closed, ``message_delta`` (stop reason, usage) and ``message_stop``; or,
        for an answer cut short, one ``error`` event."""
        if finish.truncated:
            return [error_object(finish.error_of())]
        events = self._close()
        if not self._pinged:
            events.append(PING)
        reason, sequence = stop_reason(finish)
        usage = usage_object(finish.usage)
        self.message.update(stop_reason=reason, stop_sequence=sequence, usage=usage)
        totals = {k: usage[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")}
        delta = {"stop_reason": reason, "stop_sequence": sequence}
        events.append(
            {"type": "message_delta", "delta": delta, "usage": {**totals, "output_tokens": usage["output_tokens"]}}
        )
        events.append({"type": "message_stop"})
        return events
