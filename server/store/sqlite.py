"""The embedded default: one SQLite file (WAL), driven from one dedicated worker thread so the event loop never
waits on the disk.

Every operation is a job for that thread; jobs run in order. Eviction due after a write is queued as the next job
instead of delaying the write's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from server.errors import ConfigError
from server.store.base import OPEN_TIMEOUT_S, Bounds, EvictionClock, StoredDoc, guarded, size_eviction_cutoff

log = logging.getLogger("server.store")

T = TypeVar("T")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS documents"
    " (id TEXT PRIMARY KEY, created_at REAL NOT NULL, size INTEGER NOT NULL, doc TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS documents_created_at ON documents (created_at)",
)
UPSERT = (
    "INSERT INTO documents (id, created_at, size, doc) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET size = excluded.size, doc = excluded.doc"
)
# Oldest first, the documents whose removal brings the total down by at least the given number of bytes.
OLDEST_BY_SIZE = (
    "DELETE FROM documents WHERE id IN (SELECT id FROM"
    " (SELECT id, size, SUM(size) OVER (ORDER BY created_at, id) AS run FROM documents) WHERE run - size < ?)"
)


class SqliteStore:
    def __init__(
        self,
        path: Path,
        bounds: Bounds | None = None,
        *,
        op_timeout_s: float = 5.0,
        open_timeout_s: float | None = None,
    ) -> None:
        self.path = path
        self._bounds = bounds or Bounds()
        self._timeout_s = op_timeout_s
        self._open_timeout_s = open_timeout_s or max(OPEN_TIMEOUT_S, op_timeout_s)
        self._clock = EvictionClock(self._bounds.evict_interval_s)
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None  # used only in the worker thread

    # -- the event loop's side ---------------------------------------------------------------------------------------

    async def _run(self, job: Callable[[], T], what: str) -> T:
        if self._executor is None:
            raise RuntimeError("the document store is not open")
        future = asyncio.wrap_future(self._executor.submit(job))
        return await guarded(future, timeout_s=self._timeout_s, what=what, errors=(sqlite3.Error,))

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="document-store")
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._executor.submit(self._open)), self._open_timeout_s)
        except (OSError, sqlite3.Error, TimeoutError) as exc:
            await self.close()
            detail = f"took longer than {self._open_timeout_s:g}s" if isinstance(exc, TimeoutError) else str(exc)
            raise ConfigError(
                f"The document store {self.path} cannot be opened ({detail}). "
                "Move the file away to start with an empty store, or set store.url."
            ) from exc

    async def put(self, doc_id: str, doc: dict[str, Any], *, created_at: float) -> None:
        raw = orjson.dumps(doc)
        await self._run(lambda: self._put(doc_id, raw.decode(), len(raw), created_at), "put")
        if self._clock.due() and self._executor is not None:
            self._clock.done()
            self._executor.submit(self._evict_logged)

    async def get(self, doc_id: str) -> StoredDoc | None:
        row = await self._run(lambda: self._get(doc_id), "get")
        return None if row is None else StoredDoc(doc_id, row[0], orjson.loads(row[1]))

    async def delete(self, doc_id: str) -> bool:
        return await self._run(lambda: self._delete(doc_id), "delete")

    async def evict(self) -> int:
        self._clock.done()
        return await self._run(self._evict, "evict")

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        with contextlib.suppress(TimeoutError, sqlite3.Error):
            await asyncio.wait_for(asyncio.wrap_future(executor.submit(self._close)), self._timeout_s)
        executor.shutdown(wait=False)

    # -- the worker thread's side ------------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the document store is closed")
        return self._db

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))  # a new file is private from the start
        db = sqlite3.connect(self.path, timeout=self._timeout_s, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in SCHEMA:
                db.execute(statement)
            self._db = db
            self._evict()
        except BaseException:
            self._db = None
            db.close()
            raise

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def _put(self, doc_id: str, data: str, size: int, created_at: float) -> None:
        self._conn().execute(UPSERT, (doc_id, created_at, size, data))

    def _get(self, doc_id: str) -> tuple[float, str] | None:
        query = "SELECT created_at, doc FROM documents WHERE id = ? AND created_at >= ?"
        row = self._conn().execute(query, (doc_id, self._bounds.oldest_kept())).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def _delete(self, doc_id: str) -> bool:
        return self._conn().execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount > 0

    def _evict(self) -> int:
        db = self._conn()
        started = time.monotonic()
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.execute("DELETE FROM documents WHERE created_at < ?", (self._bounds.oldest_kept(),)).rowcount
            total = db.execute("SELECT COALESCE(SUM(size), 0) FROM documents").fetchone()[0]
            need = size_eviction_cutoff(int(total), self._bounds)
            if need is not None:
                removed += db.execute(OLDEST_BY_SIZE, (need,)).rowcount
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if removed:
            log.info("document store: evicted %d documents in %.3fs", removed, time.monotonic() - started)
        return int(removed)

    def _evict_logged(self) -> None:
        try:
            self._evict()
        except sqlite3.Error as exc:
            log.error("document store: eviction failed: %s: %s", type(exc).__name__, exc)
