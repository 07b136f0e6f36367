"""Record a session on the real vLLM engine (``serve --record DIR``) over every route, then replay it with the
scripted engine (``engine.scripted.mode: recording``): every answer comes back with the same bytes, streamed or
not, ids and clocks aside (``tests/replay.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.settings import LimitsSettings, ScriptedSettings
from tests.cases import all_cases
from tests.helpers import PINNED_DATE, TINY_VLLM_ENGINE, scripted_settings, subprocess_server, threaded_server
from tests.replay import session

pytestmark = pytest.mark.engine

CASES = all_cases()
LIMITS = {"default_max_tokens": 64, "constrained_reasoning_budget": 16}
BUDGET = 16  # output tokens per answer


def test_a_real_engine_session_replays_byte_for_byte_on_every_route(tmp_path: Path) -> None:
    folder, record = tmp_path / "recording", tmp_path / "record"
    record.mkdir()
    config = {"engine": TINY_VLLM_ENGINE, "harmony": {"conversation_start_date": PINNED_DATE}, "limits": LIMITS}
    with subprocess_server(config, record, args=("--record", str(folder))) as live:
        recorded = session(live.base_url, live.api_key, CASES, BUDGET)
    manifest = json.loads((folder / "engine.json").read_text())
    assert manifest["engine"] == "vllm" and manifest["max_model_len"] == TINY_VLLM_ENGINE["vllm"]["max_model_len"]

    settings = scripted_settings(tmp_path)
    engine = settings.engine.model_copy(update={"scripted": ScriptedSettings(mode="recording", recording_dir=folder)})
    settings = settings.model_copy(update={"engine": engine, "limits": LimitsSettings(**LIMITS)})
    with threaded_server(settings) as live:
        replayed = session(live.base_url, live.api_key, CASES, BUDGET)
    assert list(replayed) == list(recorded)
    for name, raw in recorded.items():
        assert raw.startswith("200 "), (name, raw[:2000])
        assert replayed[name] == raw, name
