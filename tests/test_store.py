"""The document store: one behaviour suite over memory, an SQLite file and a real PostgreSQL server, then what is
particular to each (durability, start-up errors, timeouts, the settings that pick one)."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from server.errors import ConfigError, StoreUnavailableError
from server.settings import StoreSettings
from server.store import Bounds, DocumentStore, MemoryStore, StoredDoc, open_store
from server.store.postgres import TABLE, PostgresStore
from server.store.sqlite import SqliteStore
from tests.helpers import REPO, free_port

Factory = Callable[..., DocumentStore]
BACKENDS = ["memory", "sqlite", "postgres"]
DURABLE = ["sqlite", "postgres"]
# {"x": "aaa..."} encodes to exactly this many bytes
DOC_BYTES = 1000


def sized_doc(i: int) -> dict[str, Any]:
    body = f"{i:04d}"
    return {"x": body + "a" * (DOC_BYTES - len('{"x":""}') - len(body))}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Factory:
    """Stores of ``backend`` on one shared backing (the same file or database for every store it makes)."""
    url = request.getfixturevalue("postgres_db_url") if backend == "postgres" else None

    def make(bounds: Bounds | None = None, **kwargs: Any) -> DocumentStore:
        if backend == "memory":
            return MemoryStore(bounds)
        if backend == "sqlite":
            return SqliteStore(tmp_path / "docs.sqlite3", bounds, **kwargs)
        assert url is not None
        return PostgresStore(url, bounds, **kwargs)

    return make


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function on a fresh event loop."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def opened(store: DocumentStore) -> DocumentStore:
    await store.open()
    return store


# -- the behaviour every backend shares -------------------------------------------------------------------------------


@sync
async def test_put_get_upsert_delete(make_store: Factory) -> None:
    store = await opened(make_store())
    try:
        now = time.time()
        doc = {"id": "resp_1", "output": [{"text": "héllo \u0000 ✓"}], "n": 1.5, "none": None}
        await store.put("resp_1", doc, created_at=now - 10)
        assert await store.get("resp_1") == StoredDoc("resp_1", now - 10, doc)
        await store.put("resp_1", {"id": "resp_1", "status": "done"}, created_at=now)
        got = await store.get("resp_1")
        assert got is not None and got.doc == {"id": "resp_1", "status": "done"}
        assert got.created_at == now - 10  # the first created_at is kept
        assert await store.get("missing") is None
        assert await store.delete("resp_1") is True
        assert await store.get("resp_1") is None
        assert await store.delete("resp_1") is False
    finally:
        await store.close()


@sync
async def test_a_read_is_a_copy(make_store: Factory) -> None:
    store = await opened(make_store())
    try:
        doc: dict[str, Any] = {"items": [1]}
        await store.put("a", doc, created_at=time.time())
        doc["items"].append(2)
        got = await store.get("a")
        assert got is not None and got.doc == {"items": [1]}
    finally:
        await store.close()


@sync
async def test_age_bound(make_store: Factory) -> None:
    store = await opened(make_store(Bounds(max_age_s=60, evict_interval_s=3600)))
    try:
        now = time.time()
        await store.put("old", {"v": 1}, created_at=now - 120)
        await store.put("new", {"v": 2}, created_at=now)
        assert await store.get("old") is None  # expired documents are never read, evicted or not
        assert await store.evict() == 1
        assert await store.evict() == 0
        assert await store.get("new") is not None
    finally:
        await store.close()


@sync
async def test_size_bound_removes_the_oldest_first(make_store: Factory) -> None:
    store = await opened(make_store(Bounds(max_bytes=10 * DOC_BYTES, evict_interval_s=3600)))
    try:
        now = time.time()
        for i in range(15):  # 15 000 bytes, inserted newest first so the order is by created_at, not by insertion
            await store.put(f"d{14 - i}", sized_doc(14 - i), created_at=now - 100 + (14 - i))
        assert await store.get("d0") is not None  # no eviction yet: the interval has not passed
        assert await store.evict() == 6  # down to 90% of max_bytes: 9 documents
        kept = [i for i in range(15) if await store.get(f"d{i}") is not None]
        assert kept == list(range(6, 15))
        assert await store.evict() == 0
    finally:
        await store.close()


@sync
async def test_a_write_applies_the_bounds_once_the_interval_has_passed(make_store: Factory) -> None:
    store = await opened(make_store(Bounds(max_bytes=10 * DOC_BYTES, evict_interval_s=0)))
    try:
        now = time.time()
        for i in range(15):
            await store.put(f"d{i}", sized_doc(i), created_at=now - 100 + i)
        for _ in range(200):  # eviction after a write may run in the background
            if await store.get("d0") is None:
                break
            await asyncio.sleep(0.05)
        assert await store.get("d0") is None and await store.get("d14") is not None
    finally:
        await store.close()


@sync
async def test_concurrent_puts(make_store: Factory) -> None:
    store = await opened(make_store())
    try:
        now = time.time()

        async def writer(i: int) -> None:
            await store.put(f"doc-{i}", {"i": i}, created_at=now)
            await store.put("shared", {"by": i}, created_at=now + i)

        await asyncio.gather(*(writer(i) for i in range(100)))
        for i in range(100):
            got = await store.get(f"doc-{i}")
            assert got is not None and got.doc == {"i": i}
        shared = await store.get("shared")
        assert shared is not None and shared.doc["by"] in range(100)
    finally:
        await store.close()


@pytest.mark.parametrize("backend", DURABLE)  # a memory store begins empty
@sync
async def test_open_is_idempotent_and_applies_the_bounds(make_store: Factory) -> None:
    store = await opened(make_store())
    await store.put("old", {"v": 1}, created_at=time.time() - 120)
    await store.open()
    await store.close()
    again = await opened(make_store(Bounds(max_age_s=60)))
    try:
        assert await again.evict() == 0  # open already removed it
    finally:
        await again.close()


@pytest.mark.parametrize("backend", DURABLE)
@sync
async def test_documents_outlive_the_store_object(make_store: Factory) -> None:
    """SQLite closed and reopened, PostgreSQL from a new store object: the documents are still there."""
    now = time.time()
    first = await opened(make_store())
    await first.put("kept", {"answer": 42}, created_at=now)
    await first.close()
    second = await opened(make_store())
    try:
        assert await second.get("kept") == StoredDoc("kept", now, {"answer": 42})
    finally:
        await second.close()


@pytest.mark.parametrize("backend", DURABLE)
@sync
async def test_operations_never_block_the_event_loop(make_store: Factory) -> None:
    """A heartbeat task gets turns while 200 writes run: each one waits off the loop (a blocking store would give
    it none until the writes were over). A memory store is plain dict work and never waits."""
    store = await opened(make_store())
    beats = 0

    async def heartbeat() -> None:
        nonlocal beats
        while True:
            beats += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(heartbeat())
    try:
        await asyncio.sleep(0)
        before = beats
        for i in range(200):
            await store.put(f"d{i}", sized_doc(i), created_at=time.time())
        assert beats - before >= 200
    finally:
        ticker.cancel()
        await store.close()


# -- SQLite -----------------------------------------------------------------------------------------------------------


@sync
async def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "docs.sqlite3"
    store = SqliteStore(path)
    await store.open()
    await store.put("a", {"v": 1}, created_at=time.time())
    await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT id, size FROM documents").fetchall() == [("a", len('{"v":1}'))]


@sync
async def test_sqlite_corrupt_or_unreadable_file_is_a_start_up_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database file, " * 200)
    with pytest.raises(ConfigError, match="cannot be opened"):
        await SqliteStore(garbage).open()
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(ConfigError, match="cannot be opened"):
        await SqliteStore(folder).open()
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE documents (something TEXT)")
    with pytest.raises(ConfigError, match="cannot be opened"):
        await SqliteStore(foreign).open()


@sync
async def test_sqlite_locked_file_is_a_503_in_bounded_time(tmp_path: Path) -> None:
    path = tmp_path / "docs.sqlite3"
    store = SqliteStore(path, op_timeout_s=0.3)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        with pytest.raises(StoreUnavailableError) as caught:
            await store.put("a", {"v": 1}, created_at=time.time())
        assert caught.value.status == 503 and caught.value.retry_after == 1
        other.execute("ROLLBACK")
        await store.put("a", {"v": 1}, created_at=time.time())  # and it recovers
        assert await store.get("a") is not None
    finally:
        other.close()
        await store.close()


# -- PostgreSQL -------------------------------------------------------------------------------------------------------


@sync
async def test_postgres_replicas_share_documents(postgres_db_url: str) -> None:
    one, two = PostgresStore(postgres_db_url), PostgresStore(postgres_db_url)
    await asyncio.gather(one.open(), two.open())  # both create the schema at once
    try:
        await one.put("shared", {"from": "one"}, created_at=time.time())
        got = await two.get("shared")
        assert got is not None and got.doc == {"from": "one"}
        assert await two.delete("shared") and await one.get("shared") is None
    finally:
        await one.close()
        await two.close()


@sync
async def test_postgres_locked_table_is_a_503_in_bounded_time(postgres_db_url: str) -> None:
    import psycopg

    store = PostgresStore(postgres_db_url, op_timeout_s=0.5)
    await store.open()
    try:
        async with await psycopg.AsyncConnection.connect(postgres_db_url) as other:
            await other.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StoreUnavailableError):
                await store.get("a")
            await other.rollback()
        await store.put("a", {"v": 1}, created_at=time.time())  # and it recovers
        assert await store.get("a") is not None
    finally:
        await store.close()


@sync
async def test_postgres_unreachable_is_a_start_up_error() -> None:
    store = PostgresStore(f"postgresql://nobody:secret@127.0.0.1:{free_port()}/none", open_timeout_s=2)
    with pytest.raises(ConfigError, match="cannot be opened") as caught:
        await store.open()
    assert "secret" not in caught.value.message


# -- settings ---------------------------------------------------------------------------------------------------------


def test_settings_pick_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPTOSS_CACHE_DIR", str(tmp_path))
    default = open_store(StoreSettings())
    assert isinstance(default, SqliteStore) and default.path == tmp_path / "state.sqlite3"
    named = open_store(StoreSettings(url=f"sqlite:///{tmp_path}/x.sqlite3"))
    assert isinstance(named, SqliteStore) and named.path == tmp_path / "x.sqlite3"
    assert isinstance(open_store(StoreSettings(url="memory")), MemoryStore)
    assert isinstance(open_store(StoreSettings(url="postgresql://u@h:5432/db")), PostgresStore)
    with pytest.raises(ValueError, match=r"store\.url"):
        StoreSettings(url="mysql://u@h/db")
    with pytest.raises(ValueError, match="extra"):
        StoreSettings(urll="memory")  # type: ignore[call-arg]
    assert StoreSettings(max_age_days=2).max_age_s == 2 * 86400


def test_postgres_without_its_driver_is_a_start_up_error() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from server.errors import ConfigError\n"
        "from server.settings import StoreSettings\n"
        "from server.store import open_store\n"
        "try:\n"
        "    open_store(StoreSettings(url='postgresql://u@h/db'))\n"
        "except ConfigError as exc:\n"
        "    print(exc.message)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gptoss-server[postgres]" in done.stdout


def test_printed_settings_never_show_the_database_password() -> None:
    from server.store.base import redacted_url

    assert redacted_url("postgresql://app:s3cret@db:5432/main") == "postgresql://app:***@db:5432/main"
    assert redacted_url("postgresql://db/main?sslmode=require&password=s3cret") == (
        "postgresql://db/main?sslmode=require&password=***"
    )
    assert redacted_url("sqlite:////var/lib/x.sqlite3") == "sqlite:////var/lib/x.sqlite3"
    env = {**os.environ, "GPTOSS_STORE__URL": "postgresql://app:s3cret@db:5432/main"}
    argv = [sys.executable, "-m", "server", "print-config", "--config", "configs/scripted.yaml"]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout and '"url": "postgresql://app:***@db:5432/main"' in done.stdout
