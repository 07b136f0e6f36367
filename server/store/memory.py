"""``store.url: memory``: a dict in this process, with the same bounds (for tests and throwaway servers)."""

from __future__ import annotations

from typing import Any

import orjson

from server.store.base import Bounds, EvictionClock, StoredDoc, size_eviction_cutoff


class MemoryStore:
    """Documents are kept encoded, so a read returns a fresh copy, as the other backends do. Operations are plain
    dict work on the event loop and never wait."""

    def __init__(self, bounds: Bounds | None = None) -> None:
        self._bounds = bounds or Bounds()
        self._clock = EvictionClock(self._bounds.evict_interval_s)
        self._docs: dict[str, tuple[float, bytes]] = {}

    async def open(self) -> None:
        await self.evict()

    async def put(self, doc_id: str, doc: dict[str, Any], *, created_at: float) -> None:
        data = orjson.dumps(doc)
        kept = self._docs.get(doc_id)
        self._docs[doc_id] = (kept[0] if kept else created_at, data)
        if self._clock.due():
            await self.evict()

    async def get(self, doc_id: str) -> StoredDoc | None:
        kept = self._docs.get(doc_id)
        if kept is None or kept[0] < self._bounds.oldest_kept():
            return None
        return StoredDoc(doc_id, kept[0], orjson.loads(kept[1]))

    async def delete(self, doc_id: str) -> bool:
        return self._docs.pop(doc_id, None) is not None

    async def evict(self) -> int:
        self._clock.done()
        oldest = self._bounds.oldest_kept()
        expired = [k for k, (created, _) in self._docs.items() if created < oldest]
        for key in expired:
            del self._docs[key]
        removed = len(expired)
        need = size_eviction_cutoff(sum(len(data) for _, data in self._docs.values()), self._bounds)
        if need is not None:
            for key, (_, data) in sorted(self._docs.items(), key=lambda item: (item[1][0], item[0])):
                if need <= 0:
                    break
                del self._docs[key]
                need -= len(data)
                removed += 1
        return removed

    async def close(self) -> None:
        self._docs.clear()
