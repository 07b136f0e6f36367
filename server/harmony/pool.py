"""Rendering (and tokenizing raw prompt text) of large prompts off the event loop.

harmony's tokenizer holds the GIL for the whole of one call: a 1.6 MB conversation takes seconds, and a thread would
stall the event loop (and ``/live``) just the same. Prompts above ``inline_chars`` characters are therefore rendered
in one worker process (spawned on first use, restarted if it dies); smaller ones render inline, where the hop would
cost more than the render.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from server.errors import InternalError, InvalidRequestError
from server.harmony.encoding import encode_prompt
from server.harmony.render import HarmonyRenderer, RenderOptions
from server.types import ChatRequest

log = logging.getLogger(__name__)

_worker_renderer: HarmonyRenderer | None = None
T = TypeVar("T")
R = TypeVar("R")


def _init_worker(options: RenderOptions) -> None:
    global _worker_renderer
    _worker_renderer = HarmonyRenderer(options)


def _render_in_worker(request: ChatRequest) -> list[int] | tuple[str, str | None]:
    """Token ids, or (message, param) of the ``InvalidRequestError`` rendering raised (typed errors stay typed)."""
    assert _worker_renderer is not None
    try:
        return _worker_renderer.render(request)
    except InvalidRequestError as exc:
        return exc.message, exc.param


def prompt_chars(request: ChatRequest) -> int:
    """Characters of text the prompt is made of (what tokenizing costs grows with)."""
    total = 0
    for m in request.messages:
        total += len(m.content or "") + len(m.reasoning or "")
        total += sum(len(c.arguments) + len(c.name) + len(c.namespace or "") for c in m.tool_calls)
    for t in request.tools:
        total += len(t.description or "") + len(json.dumps(t.parameters or {}))
        total += len(t.name) + len(t.namespace or "") + len(t.namespace_description or "")
    return total


class RenderPool:
    def __init__(self, renderer: HarmonyRenderer, inline_chars: int) -> None:
        self.renderer = renderer
        self.inline_chars = inline_chars
        self._executor: ProcessPoolExecutor | None = None

    async def render(self, request: ChatRequest, chars: int) -> list[int]:
        if chars <= self.inline_chars:
            return self.renderer.render(request)
        outcome = await self._in_worker(_render_in_worker, request)
        if isinstance(outcome, tuple):
            raise InvalidRequestError(outcome[0], param=outcome[1])
        return outcome

    async def tokenize(self, text: str) -> list[int]:
        """A raw prompt's token ids (``encode_prompt``), off the event loop when the text is large."""
        if len(text) <= self.inline_chars:
            return encode_prompt(text)
        return await self._in_worker(encode_prompt, text)  # type: ignore[no-any-return]

    async def _in_worker(self, fn: Callable[[T], R], arg: T) -> R:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.renderer.options,),
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, arg)
        except BrokenProcessPool:
            log.error("the render worker died; it is restarted for the next request")
            self.close()
            raise InternalError("The prompt could not be rendered.") from None

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
