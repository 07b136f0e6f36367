"""``n`` choices on the vLLM-shaped routes (/v1 and E2E), through the openai SDK and raw HTTP against a live server
with the scripted engine: choices in index order, vLLM's usage sum, an interleaved stream, the limit, all-or-nothing
admission, a disconnect or a failing choice aborting every engine request."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import requests

from server.errors import EngineUnavailableError
from tests.helpers import API_KEY, FailingEngine, LiveServer, scripted_settings, threaded_server

REASON = [{"role": "user", "content": "reason"}]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
E2E = "/project/p-5915/genai/gpt_oss_120b/v1/chat/completions"


@pytest.fixture
def client(scripted_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted_server.base_url + "/v1", api_key=scripted_server.api_key, max_retries=0)


def _events(r: requests.Response | httpx.Response) -> list[dict[str, Any]]:
    lines = [line for line in r.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_n_returns_that_many_choices_with_usage_summed(client: openai.OpenAI) -> None:
    one = client.chat.completions.create(model="gpt-oss-120b", messages=REASON)  # type: ignore[arg-type]
    three = client.chat.completions.create(model="gpt-oss-120b", messages=REASON, n=3)  # type: ignore[arg-type]
    assert [c.index for c in three.choices] == [0, 1, 2]
    for choice in three.choices:
        assert choice.message.content == "Hello! How can I help?"
        assert choice.message.model_extra["reasoning"] == "User says hi. Reply politely."
        assert choice.finish_reason == "stop"
    assert one.usage is not None and three.usage is not None
    assert three.usage.prompt_tokens == one.usage.prompt_tokens  # the shared prompt, once
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert three.usage.total_tokens == three.usage.prompt_tokens + three.usage.completion_tokens


def test_n_stream_interleaves_one_choice_per_chunk(client: openai.OpenAI) -> None:
    one = client.chat.completions.create(model="gpt-oss-120b", messages=REASON)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model="gpt-oss-120b",
            messages=REASON,  # type: ignore[arg-type]
            n=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert [(c.choices[0].index, c.choices[0].delta.role) for c in chunks[:3]] == [(i, "assistant") for i in range(3)]
    assert all(len(c.choices) == 1 for c in chunks[:-1])
    for index in range(3):
        mine = [c.choices[0] for c in chunks[:-1] if c.choices[0].index == index]
        assert "".join(c.delta.content or "" for c in mine) == "Hello! How can I help?"
        assert (
            "".join((c.delta.model_extra or {}).get("reasoning", "") for c in mine) == "User says hi. Reply politely."
        )
        assert [c.finish_reason for c in mine if c.finish_reason] == ["stop"]
        assert mine[-1].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and one.usage is not None
    assert last.usage.prompt_tokens == one.usage.prompt_tokens
    assert last.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_null_n_is_one_and_over_the_limit_is_a_400(scripted_server: LiveServer, client: openai.OpenAI) -> None:
    body = {"model": "gpt-oss-120b", "messages": REASON, "n": None}
    r = requests.post(scripted_server.base_url + "/v1/chat/completions", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200 and len(r.json()["choices"]) == 1
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gpt-oss-120b", messages=REASON, n=17)  # type: ignore[arg-type]
    assert err.value.body["param"] == "n" and "at most 16" in err.value.body["message"]  # type: ignore[index]


def test_greedy_n_is_refused_as_vllm_refuses_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="n must be 1 when using greedy sampling, got 2"):
        client.chat.completions.create(model="gpt-oss-120b", messages=REASON, n=2, temperature=0)  # type: ignore[arg-type]
    one = client.chat.completions.create(model="gpt-oss-120b", messages=REASON, n=1, temperature=0)  # type: ignore[arg-type]
    assert len(one.choices) == 1


def test_e2e_serves_n_in_its_vllm_era(scripted_server: LiveServer) -> None:
    body = {"model": "gpt_oss_120b", "messages": REASON, "n": 2}
    r = requests.post(scripted_server.base_url + E2E, json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert [c["message"]["reasoning_content"] for c in choices] == ["User says hi. Reply politely."] * 2
    assert list(choices[0]) == ["index", "message", "logprobs", "finish_reason", "stop_reason"]
    s = requests.post(scripted_server.base_url + E2E, json={**body, "stream": True}, headers=AUTH, timeout=30)
    chunks = _events(s)
    assert {c["choices"][0]["index"] for c in chunks} == {0, 1}
    assert [c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]] in ([0, 1], [1, 0])
    r = requests.post(scripted_server.base_url + E2E, json={**body, "n": 17}, headers=AUTH, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "n"


def test_n_is_admitted_all_or_nothing(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    settings.limits.max_concurrent_requests = 2
    with threaded_server(settings) as live:
        body = {"model": "gpt-oss-120b", "messages": REASON}
        url = live.base_url + "/v1/chat/completions"
        r = requests.post(url, json={**body, "n": 3}, headers=AUTH, timeout=30)
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limit_error"
        assert live.app.state.ctx.service.active_requests == 0  # the two slots it took were given back
        assert len(requests.post(url, json={**body, "n": 2}, headers=AUTH, timeout=30).json()["choices"]) == 2


def _wait_idle(live: LiveServer) -> None:
    engine = live.app.state.ctx.engine
    deadline = time.monotonic() + 5
    while engine.num_running() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.num_running() == 0
    assert live.app.state.ctx.service.active_requests == 0


def test_a_stream_the_client_leaves_aborts_every_choice(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path, token_delay_s=0.02)
    with threaded_server(settings) as live:
        engine = live.app.state.ctx.engine
        body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "long"}], "stream": True, "n": 3}
        indices: list[int] = []
        with (
            httpx.Client(timeout=30) as http,
            http.stream("POST", live.base_url + "/v1/chat/completions", headers=AUTH, json=body) as r,
        ):
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    indices.append(json.loads(line[6:])["choices"][0]["index"])
                if len(indices) == 12:
                    assert engine.num_running() == 3
                    break
        assert set(indices[3:]) == {0, 1, 2}  # after the role chunks, the choices' text interleaved
        _wait_idle(live)


def test_an_answer_the_client_leaves_aborts_every_choice(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path, token_delay_s=0.02)
    with threaded_server(settings) as live:
        body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "long"}], "n": 3}
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(live.base_url + "/v1/chat/completions", headers=AUTH, json=body, timeout=0.3)
        _wait_idle(live)


def test_one_failing_choice_ends_the_answer_in_the_route_error_style(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path, token_delay_s=0.01)
    died = EngineUnavailableError("The engine died.")
    engine = FailingEngine(settings.engine.scripted, after=4, error=died, fails=lambda id_: id_.startswith("1_"))
    with threaded_server(settings, engine) as live:  # choice 1 of every request fails after 4 tokens
        body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "long"}], "n": 3}
        url = live.base_url + "/v1/chat/completions"
        r = requests.post(url, json=body, headers=AUTH, timeout=30)
        assert r.status_code == 503 and r.json()["error"]["message"] == "The engine died."
        _wait_idle(live)
        s = requests.post(url, json={**body, "stream": True}, headers=AUTH, timeout=30)
        events = _events(s)
        assert events[-1] == {
            "error": {"message": "The engine died.", "type": "server_error", "param": None, "code": None}
        }
        assert not [e for e in events[:-1] if e["choices"][0]["finish_reason"]]  # no choice finished normally
        _wait_idle(live)
        e = requests.post(live.base_url + E2E, json={**body, "model": "gpt_oss_120b", "stream": True}, headers=AUTH)
        assert _events(e)[-1]["error"]["type"] == "InternalServerError"
        _wait_idle(live)
