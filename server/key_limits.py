"""Per-key admission: concurrent requests and tokens per minute for each named API key (``auth.key_limits``)."""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque

from server.errors import RateLimitError
from server.settings import KeyLimits

WINDOW_S = 60.0


class KeyLimiter:
    def __init__(self, limits: dict[str, KeyLimits]) -> None:
        self._limits = limits
        self._active: dict[str, int] = defaultdict(int)
        self._spent: dict[str, deque[tuple[float, int]]] = defaultdict(deque)

    def admit(self, key: str | None, prompt_tokens: int) -> None:
        """Reserve a slot and the prompt's tokens for ``key``, or raise 429 with the seconds until a retry fits."""
        limits = self._limits.get(key or "")
        if key is None or limits is None:
            return
        if limits.max_concurrent_requests is not None and self._active[key] >= limits.max_concurrent_requests:
            raise RateLimitError(
                f"API key '{key}' has {limits.max_concurrent_requests} requests in flight, its limit. Retry shortly.",
                retry_after=1,
            )
        if limits.tokens_per_minute is not None:
            used, retry = self._window(key, limits.tokens_per_minute - prompt_tokens)
            if used + prompt_tokens > limits.tokens_per_minute:
                raise RateLimitError(
                    f"API key '{key}' used {used} of its {limits.tokens_per_minute} tokens per minute.",
                    retry_after=retry,
                )
        self._active[key] += 1
        self.spend(key, prompt_tokens)

    def release(self, key: str | None) -> None:
        if key is not None and self._active.get(key, 0) > 0:
            self._active[key] -= 1

    def spend(self, key: str | None, tokens: int) -> None:
        if key is not None and key in self._limits and tokens:
            self._spent[key].append((time.monotonic(), tokens))

    def _window(self, key: str, room: int) -> tuple[int, int]:
        """Tokens spent by ``key`` in the last minute, and the seconds until ``room`` tokens would be left."""
        now = time.monotonic()
        spent = self._spent[key]
        while spent and now - spent[0][0] >= WINDOW_S:
            spent.popleft()
        used = sum(tokens for _, tokens in spent)
        retry, freed = 1, 0
        for at, tokens in spent:  # oldest first: when enough of them expire
            freed += tokens
            retry = max(1, math.ceil(at + WINDOW_S - now))
            if used - freed <= room:
                break
        return used, retry
