"""``store.url: postgresql://...``: one table in a PostgreSQL database that several replicas share.

psycopg 3 (the ``postgres`` extra) with a small async connection pool. Creating the schema and evicting each take a
transaction-level advisory lock, so replicas starting or evicting at once do not trip over each other (eviction
is skipped by a replica while another one runs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from server.errors import ConfigError, StoreUnavailableError
from server.store.base import (
    OPEN_TIMEOUT_S,
    Bounds,
    EvictionClock,
    StoredDoc,
    guarded,
    redacted_url,
    size_eviction_cutoff,
)

log = logging.getLogger("server.store")

TABLE = "gptoss_documents"
SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE}"
    " (id TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL, size BIGINT NOT NULL, doc TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_created_at ON {TABLE} (created_at)",
)
UPSERT = (
    f"INSERT INTO {TABLE} (id, created_at, size, doc) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, doc = EXCLUDED.doc"
)
OLDEST_BY_SIZE = (
    f"DELETE FROM {TABLE} WHERE id IN (SELECT id FROM"
    f" (SELECT id, size, SUM(size) OVER (ORDER BY created_at, id) AS run FROM {TABLE}) AS t WHERE run - size < %s)"
)
# Advisory lock keys (any fixed 64-bit numbers): one for creating the schema, one for eviction.
SCHEMA_LOCK = 0x67707473_00000001
EVICT_LOCK = 0x67707473_00000002
POOL_SIZE = 4
ERRORS: tuple[type[BaseException], ...] = (psycopg.Error, OSError)


class PostgresStore:
    def __init__(
        self,
        url: str,
        bounds: Bounds | None = None,
        *,
        op_timeout_s: float = 5.0,
        open_timeout_s: float | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.url = url
        self._bounds = bounds or Bounds()
        self._timeout_s = op_timeout_s
        self._open_timeout_s = open_timeout_s or max(OPEN_TIMEOUT_S, op_timeout_s)
        self._pool_size = pool_size
        self._clock = EvictionClock(self._bounds.evict_interval_s)
        self._pool: AsyncConnectionPool | None = None
        self._evicting: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            await asyncio.wait_for(self._create_schema(), self._open_timeout_s)
            pool = AsyncConnectionPool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                open=False,
                kwargs={"autocommit": True},
                configure=self._configure,
                check=AsyncConnectionPool.check_connection,
                timeout=self._timeout_s,
                name="document-store",
            )
            await pool.open(wait=True, timeout=self._open_timeout_s)
            self._pool = pool
            await asyncio.wait_for(self._evict(), self._open_timeout_s)
        except (*ERRORS, TimeoutError) as exc:
            await self.close()
            detail = f"took longer than {self._open_timeout_s:g}s" if isinstance(exc, TimeoutError) else str(exc)
            raise ConfigError(
                f"The document store {redacted_url(self.url)} cannot be opened ({detail.strip()})."
            ) from exc

    async def put(self, doc_id: str, doc: dict[str, Any], *, created_at: float) -> None:
        raw = orjson.dumps(doc)
        await self._guarded(self._execute(UPSERT, (doc_id, created_at, len(raw), raw.decode())), "put")
        if self._clock.due() and (self._evicting is None or self._evicting.done()):
            self._clock.done()
            self._evicting = asyncio.create_task(self._evict_logged(), name="document-store-evict")

    async def get(self, doc_id: str) -> StoredDoc | None:
        query = f"SELECT created_at, doc FROM {TABLE} WHERE id = %s AND created_at >= %s"
        row = await self._guarded(self._fetchone(query, (doc_id, self._bounds.oldest_kept())), "get")
        return None if row is None else StoredDoc(doc_id, float(row[0]), orjson.loads(row[1]))

    async def delete(self, doc_id: str) -> bool:
        return await self._guarded(self._execute(f"DELETE FROM {TABLE} WHERE id = %s", (doc_id,)), "delete") > 0

    async def evict(self) -> int:
        self._clock.done()
        return await self._guarded(self._evict(), "evict")

    async def close(self) -> None:
        task, self._evicting = self._evicting, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(timeout=self._timeout_s)

    # -- helpers -----------------------------------------------------------------------------------------------------

    def _conn_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            raise RuntimeError("the document store is not open")
        return self._pool

    async def _guarded(self, op: Any, what: str) -> Any:
        return await guarded(op, timeout_s=self._timeout_s, what=what, errors=ERRORS)

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # The server gives up on a statement the client has stopped waiting for.
        await conn.execute(f"SET statement_timeout = {int(self._timeout_s * 1000)}")

    async def _create_schema(self) -> None:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for statement in SCHEMA:
                await conn.execute(statement)

    async def _execute(self, query: str, params: tuple[Any, ...]) -> int:
        async with self._conn_pool().connection() as conn:
            return (await conn.execute(query, params)).rowcount

    async def _fetchone(self, query: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        async with self._conn_pool().connection() as conn:
            return await (await conn.execute(query, params)).fetchone()

    async def _evict(self) -> int:
        started = time.monotonic()
        async with self._conn_pool().connection() as conn, conn.transaction():
            locked = await (await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (EVICT_LOCK,))).fetchone()
            if not (locked and locked[0]):
                return 0  # another replica is evicting
            oldest = self._bounds.oldest_kept()
            removed = (await conn.execute(f"DELETE FROM {TABLE} WHERE created_at < %s", (oldest,))).rowcount
            total = await (await conn.execute(f"SELECT COALESCE(SUM(size), 0) FROM {TABLE}")).fetchone()
            need = size_eviction_cutoff(int(total[0]) if total else 0, self._bounds)
            if need is not None:
                removed += (await conn.execute(OLDEST_BY_SIZE, (need,))).rowcount
        if removed:
            log.info("document store: evicted %d documents in %.3fs", removed, time.monotonic() - started)
        return removed

    async def _evict_logged(self) -> None:
        with contextlib.suppress(StoreUnavailableError, RuntimeError):  # guarded() has logged it; or closed meanwhile
            await self.evict()
