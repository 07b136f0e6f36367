"""A durable store of JSON documents by id, bounded in age and size: an SQLite file (the default), PostgreSQL for
replicas that share state, or memory. ``open_store(settings.store)`` picks one; ``await store.open()`` at start-up."""

from server.store.base import Bounds, DocumentStore, StoredDoc, open_store
from server.store.memory import MemoryStore

__all__ = ["Bounds", "DocumentStore", "MemoryStore", "StoredDoc", "open_store"]
