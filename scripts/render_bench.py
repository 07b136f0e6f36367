#!/usr/bin/env python3
"""Prompt rendering for an agent's loop: CPU per turn with the long-text token cache and without it.

An agent resends its whole conversation on every turn: instructions, then per turn an assistant tool call and the
tool's output. This renders that conversation turn after turn in one process (what our server does per request
before the engine sees it) and reports the CPU time of the last turns' renders, cache on (the default
``limits.render_cache_bytes``) and off (0), and the prompt's length in tokens. The render only: in the server a
prompt over ``limits.render_inline_chars`` renders in the render worker, which adds the round trip to it (the
request pickled there, the tokens back).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.harmony.render import HarmonyRenderer, RenderOptions
from server.settings import LimitsSettings
from server.types import ChatMessage, ChatRequest, ToolCall


def conversation(turns: int, output_chars: int) -> list[list[ChatMessage]]:
    """The messages sent on each turn of the loop."""
    base = "The service logs, part {i}: request handled, status 200, latency {ms} ms, user agent curl/8.5.\n"
    messages = [ChatMessage("system", "You are a careful coding agent. " * 60), ChatMessage("user", "Fix the bug.")]
    sent = []
    for turn in range(turns):
        sent.append(list(messages))
        call = ToolCall(f"call_{turn}", "read_file", f'{{"path": "logs/part{turn}.txt"}}')
        lines = "".join(base.format(i=turn, ms=(turn * 37 + k) % 1000) for k in range(output_chars // len(base) + 1))
        messages += [
            ChatMessage("assistant", None, reasoning="Read the next part.", tool_calls=[call]),
            ChatMessage("tool", lines[:output_chars], tool_call_id=call.id),
        ]
    return sent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--turns", type=int, default=40)
    p.add_argument("--output-chars", type=int, default=4000, help="characters of each tool output")
    p.add_argument("--last", type=int, default=10, help="turns measured: the last N")
    args = p.parse_args()
    turns = conversation(args.turns, args.output_chars)
    for label, budget in (("cache on", LimitsSettings().render_cache_bytes), ("cache off", 0)):
        renderer = HarmonyRenderer(RenderOptions(conversation_start_date="2026-01-15", text_cache_bytes=budget))
        times, tokens = [], 0
        for messages in turns:
            t0 = time.process_time()
            tokens = len(renderer.render(ChatRequest(messages)))
            times.append(time.process_time() - t0)
        last = times[-args.last :]
        print(
            f"{label:9}: last {len(last)} turns median {statistics.median(last) * 1e3:.2f} ms CPU per render, "
            f"all {args.turns} turns {sum(times) * 1e3:.0f} ms; last prompt {tokens} tokens"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
