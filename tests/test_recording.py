"""Record and replay (scripted engine on both sides): a session recorded through ``RecordingEngine`` replays with the
same bytes on every route, ids and clocks aside; step boundaries, cached tokens, refusals and mid-stream errors come
back as recorded; a request the recording lacks is a 404 naming its hash and the folder. The same comparison on the
real vLLM engine is ``tests/test_engine_replay.py``."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from server.cli import _overrides, parser
from server.engine.base import EngineStep, GenerationRequest
from server.engine.factory import create_engine
from server.engine.recording import Recording, RecordingEngine, request_hash, request_key
from server.engine.scripted import ScriptedEngine
from server.errors import ConfigError, EngineUnavailableError, InvalidRequestError
from server.harmony.encoding import RETURN
from server.settings import ScriptedSettings, Settings
from server.types import SamplingOptions
from tests.cases import all_cases
from tests.helpers import SCRIPT_RULES, FailingEngine, scripted_settings, threaded_server
from tests.replay import normalize, session

CASES = all_cases()
OPENAI = next(c for c in CASES if c.name == "openai")


class ChunkyEngine(ScriptedEngine):
    """The scripted engine, its tokens in steps of three (as vLLM's steps may hold several tokens)."""

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineStep]:
        held: list[EngineStep] = []
        async for step in super().generate(request):
            held.append(step)
            if len(held) == 3 or step.finish_reason is not None:
                yield merged(held)
                held = []
        if held:
            yield merged(held)


def merged(steps: list[EngineStep]) -> EngineStep:
    logprobs = [e for s in steps for e in s.logprobs or []] if steps[0].logprobs is not None else None
    return EngineStep(
        [t for s in steps for t in s.token_ids],
        steps[-1].finish_reason,
        steps[-1].stop_reason,
        logprobs,
        steps[0].cached_tokens,
        steps[0].prompt_logprobs,
    )


class StrictEngine(ScriptedEngine):
    """Refuses constrained requests, as an engine refuses a grammar it cannot compile."""

    def validate(self, request: GenerationRequest) -> None:
        if request.constraint is not None:
            raise InvalidRequestError("Invalid structured output specification: no.", param="response_format")


def replay_settings(tmp: Path, folder: Path) -> Settings:
    settings = scripted_settings(tmp)
    scripted = ScriptedSettings(mode="recording", recording_dir=folder)
    return settings.model_copy(update={"engine": settings.engine.model_copy(update={"scripted": scripted})})


def scripted(**extra: Any) -> ScriptedSettings:
    return ScriptedSettings(mode="replay", rules=SCRIPT_RULES, **extra)


def test_a_recorded_session_replays_byte_for_byte_on_every_route(tmp_path: Path) -> None:
    folder = tmp_path / "recording"
    inner = ChunkyEngine(scripted(prefix_cache=True))
    with threaded_server(scripted_settings(tmp_path), RecordingEngine(inner, folder)) as live:
        recorded = session(live.base_url, live.api_key, CASES)
    steps = [json.loads(line)["steps"] for path in folder.glob("*.jsonl") for line in path.read_text().splitlines()]
    assert any(len(s["token_ids"]) == 3 for take in steps for s in take)  # the engine's own step boundaries
    assert any(s.get("cached_tokens") for take in steps for s in take)
    assert any(s.get("logprobs") for take in steps for s in take)
    assert any(s.get("prompt_logprobs") for take in steps for s in take)

    with threaded_server(replay_settings(tmp_path, folder)) as live:
        replayed = session(live.base_url, live.api_key, CASES)
    assert list(replayed) == list(recorded)
    for name, raw in recorded.items():
        assert raw.startswith("200 "), (name, raw)
        assert replayed[name] == raw, name
    assert "Hello! How can I help?" in recorded["openai/plain"]
    assert re.search(r'"cache_read_input_tokens":[1-9]', recorded["anthropic/plain-stream"])


def test_a_miss_is_a_404_naming_the_hash_and_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "recording"
    with threaded_server(scripted_settings(tmp_path), RecordingEngine(ScriptedEngine(scripted()), folder)) as live:
        requests.post(
            live.base_url + OPENAI.chat_path,
            json=OPENAI.body([{"role": "user", "content": "reason"}], False, {}),
            headers=OPENAI.auth_headers(live.api_key),
            timeout=30,
        ).raise_for_status()
    with threaded_server(replay_settings(tmp_path, folder)) as live:
        client = openai.OpenAI(base_url=live.base_url + "/v1", api_key=live.api_key, max_retries=0)
        answer = client.chat.completions.create(model="gpt-oss-120b", messages=[{"role": "user", "content": "reason"}])
        assert answer.choices[0].message.content == "Hello! How can I help?"
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="gpt-oss-120b", messages=[{"role": "user", "content": "not recorded"}])
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "recording_miss"
    assert str(folder) in error["message"]
    digest = error["message"].split("request hash ", 1)[1][:16]
    assert not (folder / f"{digest}.jsonl").exists() and len(list(folder.glob("*.jsonl"))) == 1


def test_refusals_and_mid_stream_errors_replay_as_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "recording"
    schema = {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}}
    refused = OPENAI.body([{"role": "user", "content": "city json"}], False, schema)
    broken = OPENAI.body([{"role": "user", "content": "reason"}], True, {})

    def run(base_url: str, key: str) -> list[str]:
        headers = OPENAI.auth_headers(key)
        return [
            f"{r.status_code} {normalize(r.text)}"
            for r in (
                requests.post(base_url + OPENAI.chat_path, json=b, headers=headers, timeout=30)
                for b in (refused, broken)
            )
        ]

    class Both(FailingEngine, StrictEngine):
        pass

    engine = Both(scripted(), after=4, error=EngineUnavailableError("The engine has stopped."))
    with threaded_server(scripted_settings(tmp_path), RecordingEngine(engine, folder)) as live:
        recorded = run(live.base_url, live.api_key)
    assert recorded[0].startswith("400 ") and "Invalid structured output specification" in recorded[0]
    assert recorded[1].startswith("200 ") and "The engine has stopped." in recorded[1]
    with threaded_server(replay_settings(tmp_path, folder)) as live:
        assert run(live.base_url, live.api_key) == recorded


def test_takes_of_one_request_replay_in_order_then_the_last_repeats(tmp_path: Path) -> None:
    class Counting(ScriptedEngine):
        runs = 0

        def script_for(self, prompt: list[int]) -> list[int]:
            Counting.runs += 1
            return [*self._encoding.encode(f"answer {Counting.runs}"), RETURN]

    def request(request_id: str) -> GenerationRequest:
        return GenerationRequest(request_id, [1, 2, 3], SamplingOptions(), 16, (RETURN,))

    async def run() -> list[str]:
        recorder = RecordingEngine(Counting(ScriptedSettings(max_model_len=4096)), tmp_path)
        await recorder.start()
        for n in range(2):
            recorded = [s async for s in recorder.generate(request(f"rec{n}"))]
            assert recorded[-1].finish_reason == "stop"
        replay = ScriptedEngine(ScriptedSettings(mode="recording", recording_dir=tmp_path))
        await replay.start()
        assert replay.info.max_model_len == 4096  # the recorded engine's context, not the scripted default
        texts = []
        for n in range(3):
            steps = [s async for s in replay.generate(request(f"play{n}"))]
            texts.append(replay._encoding.decode([t for s in steps for t in s.token_ids]))
        return texts

    assert asyncio.run(run()) == ["answer 1<|return|>", "answer 2<|return|>", "answer 2<|return|>"]


def test_the_hash_covers_what_changes_the_stream_and_nothing_else() -> None:
    base = GenerationRequest("a", [1, 2, 3], SamplingOptions(max_tokens=100, temperature=0.5), 64, (200002,))
    same = GenerationRequest("b", [1, 2, 3], SamplingOptions(max_tokens=10, temperature=0.5), 64, (200002,))
    assert request_hash(base) == request_hash(same)  # request id, and the max_tokens asked for, left out
    changed = [
        GenerationRequest("a", [1, 2, 4], base.sampling, 64, (200002,)),
        GenerationRequest("a", [1, 2, 3], base.sampling, 65, (200002,)),
        GenerationRequest("a", [1, 2, 3], base.sampling, 64, (200002, 200012)),
        GenerationRequest("a", [1, 2, 3], base.sampling, 64, (200002,), {"json": {"type": "object"}}),
        GenerationRequest("a", [1, 2, 3], SamplingOptions(temperature=0.5, seed=1), 64, (200002,)),
        GenerationRequest("a", [1, 2, 3], SamplingOptions(temperature=0.5, stop=["x"]), 64, (200002,)),
        GenerationRequest("a", [1, 2, 3], SamplingOptions(temperature=0.5, logprobs=True), 64, (200002,)),
    ]
    hashes = {request_hash(r) for r in changed}
    assert len(hashes) == len(changed) and request_hash(base) not in hashes
    assert request_key(base)["prompt_token_ids"] == [1, 2, 3]


def test_record_and_replay_settings_and_flags(tmp_path: Path) -> None:
    args = parser().parse_args(["serve", "--record", str(tmp_path / "rec")])
    assert _overrides(args) == {"engine": {"record_dir": str(tmp_path / "rec")}}
    args = parser().parse_args(["serve", "--replay", str(tmp_path)])
    replay = _overrides(args)["engine"]
    assert replay == {"kind": "scripted", "scripted": {"mode": "recording", "recording_dir": str(tmp_path)}}
    settings = Settings(engine={"kind": "scripted", "record_dir": str(tmp_path / "rec")})
    assert isinstance(create_engine(settings), RecordingEngine)
    with pytest.raises(ValueError, match="recording_dir"):
        ScriptedSettings(mode="recording")
    with pytest.raises(ConfigError, match="no recording folder"):
        Recording(tmp_path)
    (tmp_path / "engine.json").write_text(json.dumps({"format": 99, "max_model_len": 10}))
    with pytest.raises(ConfigError, match="format 99"):
        Recording(tmp_path)
