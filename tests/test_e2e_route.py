"""E2E Networks TIR route: the `openai` SDK with E2E's base_url (as E2E's docs do) and raw HTTP against a
live server (scripted engine), exact bytes pinned by goldens, vLLM's error envelope, the era switches,
and one run on the real vLLM engine."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from routes.e2e import ids
from tests.cases.e2e import BASE, check_error
from tests.contract import sse_payloads
from tests.helpers import API_KEY, FailingEngine, LiveServer, assert_golden, scripted_settings, threaded_server

GOLDEN = Path(__file__).parent / "golden" / "e2e"
MODEL = "gpt_oss_120b"
REASON = [{"role": "user", "content": "reason"}]
WEATHER = [{"role": "user", "content": "weather"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CALL_ID = re.compile(r'"id":"call_[A-Za-z0-9]{24}"')
TOP_KEYS = [
    "id", "object", "created", "model", "choices", "service_tier", "system_fingerprint", "usage",
    "prompt_logprobs", "prompt_token_ids", "kv_transfer_params",
]  # fmt: skip
MESSAGE_KEYS = ["role", "content", "refusal", "annotations", "audio", "function_call", "tool_calls"]


def client_for(server: LiveServer, project: str = "p-5915") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.base_url}/project/{project}/genai/gpt_oss_120b/v1", api_key=API_KEY, max_retries=0
    )


def post(server: LiveServer, body: Any, *, path: str = BASE + "/chat/completions", **kw: Any) -> requests.Response:
    return requests.post(server.base_url + path, json=body, headers={**AUTH, **kw.pop("headers", {})}, timeout=30)


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "now", lambda: 1770614085.0)
    monkeypatch.setattr(ids, "new_id", lambda: "chatcmpl-82c7e2c5-a99c-4869-8068-49aa705812ba")


def check_golden(name: str, data: bytes) -> None:
    assert_golden(GOLDEN / name, CALL_ID.sub('"id":"call_<id>"', data.decode()))


# ---- non-streaming ------------------------------------------------------------------------------------


def test_sdk_documented_request(scripted_server: LiveServer) -> None:
    """E2E's documented body: temperature 0.5, max_tokens 1024, top_p 1, frequency 0, presence 1."""
    r = client_for(scripted_server).chat.completions.create(
        model=MODEL,
        messages=REASON,
        temperature=0.5,
        max_tokens=1024,
        top_p=1,
        frequency_penalty=0,
        presence_penalty=1,
        stream=False,
    )
    assert r.object == "chat.completion" and r.model == MODEL
    prefix, dashed = r.id[: len("chatcmpl-")], r.id[len("chatcmpl-") :]
    assert prefix == "chatcmpl-" and str(uuid.UUID(dashed)) == dashed
    assert r.choices[0].message.content == "Hello! How can I help?"
    assert (r.choices[0].message.model_extra or {})["reasoning_content"] == "User says hi. Reply politely."
    assert r.choices[0].message.tool_calls == []
    assert r.usage is not None and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_golden_reasoning(scripted_server: LiveServer, pinned: None) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": REASON})
    check_golden("reason.json", r.content)
    data = r.json()
    assert list(data) == TOP_KEYS
    assert list(data["choices"][0]) == ["index", "message", "logprobs", "finish_reason", "stop_reason"]
    assert list(data["choices"][0]["message"]) == [*MESSAGE_KEYS, "reasoning_content"]
    assert list(data["usage"]) == ["prompt_tokens", "total_tokens", "completion_tokens", "prompt_tokens_details"]


def test_golden_tool_call(scripted_server: LiveServer, pinned: None) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": WEATHER, "tools": TOOLS})
    check_golden("weather.json", r.content)
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_project_id_query_and_other_projects(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": REASON}, path=BASE + "/chat/completions?project_id=5915")
    assert r.status_code == 200
    r = client_for(scripted_server, "p-1").chat.completions.create(model=MODEL, messages=REASON)
    assert r.choices[0].message.content == "Hello! How can I help?"


def test_model_may_be_omitted(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"messages": REASON})
    assert r.status_code == 200 and r.json()["model"] == MODEL


def test_return_token_ids(scripted_server: LiveServer) -> None:
    data = post(scripted_server, {"model": MODEL, "messages": REASON, "return_token_ids": True}).json()
    assert len(data["choices"][0]["token_ids"]) == data["usage"]["completion_tokens"]
    assert len(data["prompt_token_ids"]) == data["usage"]["prompt_tokens"]


# ---- streaming ----------------------------------------------------------------------------------------


def test_golden_stream(scripted_server: LiveServer, pinned: None) -> None:
    body = {"model": MODEL, "messages": REASON, "stream": True, "stream_options": {"include_usage": True}}
    r = post(scripted_server, body)
    assert r.headers["content-type"].startswith("text/event-stream")
    check_golden("reason.sse", r.content)
    payloads, blocks = sse_payloads(r.content.decode())
    assert blocks[-1] == "data: [DONE]"
    first, *deltas, finish, usage = payloads
    # vLLM's exclude_unset chunks, exactly as E2E documents the first one
    assert first["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
    ]
    assert all(list(p) == ["id", "object", "created", "model", "choices"] for p in [first, *deltas, finish])
    assert "".join(p["choices"][0]["delta"].get("reasoning_content", "") for p in deltas) == (
        "User says hi. Reply politely."
    )
    assert finish["choices"][0]["finish_reason"] == "stop" and "stop_reason" in finish["choices"][0]
    assert usage["choices"] == [] and list(usage["usage"]) == ["prompt_tokens", "total_tokens", "completion_tokens"]


def test_golden_stream_tool_call(scripted_server: LiveServer, pinned: None) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": WEATHER, "tools": TOOLS, "stream": True})
    check_golden("weather.sse", r.content)


def test_sdk_stream(scripted_server: LiveServer) -> None:
    stream = client_for(scripted_server).chat.completions.create(
        model=MODEL, messages=REASON, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! How can I help?"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    plain = list(client_for(scripted_server).chat.completions.create(model=MODEL, messages=REASON, stream=True))
    assert all(c.usage is None and c.choices for c in plain)  # usage only with include_usage


def test_continuous_usage(scripted_server: LiveServer) -> None:
    body = {
        "model": MODEL,
        "messages": REASON,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }
    payloads, _ = sse_payloads(post(scripted_server, body).content.decode())
    counts = [p["usage"]["completion_tokens"] for p in payloads]
    assert counts == sorted(counts) and counts[-1] == payloads[-2]["usage"]["completion_tokens"] > 0


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("e2e-failing"))
    engine = FailingEngine(settings.engine.scripted, after=12, error=RuntimeError("engine died"))
    with threaded_server(settings, engine) as live:
        yield live


def test_error_during_stream(failing_server: LiveServer) -> None:
    r = post(failing_server, {"model": MODEL, "messages": REASON, "stream": True})
    payloads, blocks = sse_payloads(r.content.decode())
    assert blocks[-1] == "data: [DONE]"
    assert list(payloads[-1]) == ["error"]
    error = payloads[-1]["error"]
    assert list(error) == ["message", "type", "param", "code"]
    assert error["type"] == "InternalServerError" and error["code"] == 500
    with pytest.raises(openai.APIError):
        list(client_for(failing_server).chat.completions.create(model=MODEL, messages=REASON, stream=True))
    check_error(post(failing_server, {"model": MODEL, "messages": REASON}), 500)


# ---- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"x-auth-token": API_KEY}, {"Authorization": API_KEY}],
)
def test_auth_failures(scripted_server: LiveServer, headers: dict[str, str]) -> None:
    r = requests.post(
        scripted_server.base_url + BASE + "/chat/completions",
        json={"model": MODEL, "messages": REASON},
        headers=headers,
        timeout=30,
    )
    check_error(r, 401)
    assert r.json()["error"]["type"] == "Unauthorized"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=scripted_server.base_url + BASE, api_key="wrong", max_retries=0).models.list()


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2]", b'"text"'])
def test_bad_bodies(scripted_server: LiveServer, raw: bytes) -> None:
    r = requests.post(
        scripted_server.base_url + BASE + "/chat/completions",
        data=raw,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=30,
    )
    check_error(r, 400)
    assert r.json()["error"]["type"] == "Bad Request"


@pytest.mark.parametrize(
    ("extra", "param", "kind"),
    [
        ({"temperature": 2.5}, "temperature", "Bad Request"),
        ({"top_p": 0}, "top_p", "Bad Request"),
        ({"max_tokens": 0}, "max_tokens", "Bad Request"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs", "Bad Request"),
        ({"n": 10**9}, "n", "Bad Request"),
        ({"messages": []}, "messages", "Bad Request"),
        ({"n": 17}, "n", "BadRequestError"),  # over limits.max_n
        ({"tool_choice": "required"}, "tool_choice", "BadRequestError"),
    ],
)
def test_out_of_range(scripted_server: LiveServer, extra: dict[str, Any], param: str, kind: str) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": REASON, **extra})
    check_error(r, 400)
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == kind


def test_unknown_model(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"model": "gpt-oss-120b", "messages": REASON})
    check_error(r, 404)
    assert r.json()["error"] == {
        "message": "The model `gpt-oss-120b` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    with pytest.raises(openai.NotFoundError):
        client_for(scripted_server).chat.completions.create(model="llama", messages=REASON)


def test_context_too_long(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": [{"role": "user", "content": "word " * 140_000}]})
    check_error(r, 400)
    assert r.json()["error"]["type"] == "BadRequestError"
    assert r.json()["error"]["message"].startswith("This model's maximum context length is ")
    with pytest.raises(openai.BadRequestError):
        client_for(scripted_server).chat.completions.create(model=MODEL, messages=REASON, max_tokens=10**6)


# ---- models -------------------------------------------------------------------------------------------


def test_models(scripted_server: LiveServer) -> None:
    models = client_for(scripted_server).models.list()
    (card,) = models.data
    assert card.id == MODEL and card.owned_by == "vllm" and card.object == "model"
    raw = requests.get(scripted_server.base_url + BASE + "/models", headers=AUTH, timeout=10).json()
    assert list(raw) == ["object", "data"] and raw["data"][0]["root"] == MODEL
    assert requests.get(scripted_server.base_url + BASE + "/models", timeout=10).status_code == 401


# ---- era switches -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def newer_vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("e2e-newer"))
    settings.providers.e2e = settings.providers.e2e.model_copy(
        update={
            "reasoning_key": "reasoning",
            "empty_tool_calls": "omit",
            "choice_token_ids": True,
            "error_style": "flat",
            "auth_error": "envoy",
            "system_fingerprint": "fp-test",
            "models_route": False,
        }
    )
    with threaded_server(settings) as live:
        yield live


def test_era_switches(newer_vllm: LiveServer) -> None:
    data = post(newer_vllm, {"model": MODEL, "messages": REASON}).json()
    message = data["choices"][0]["message"]
    assert list(message) == [*MESSAGE_KEYS[:-1], "reasoning"] and message["reasoning"]
    assert data["choices"][0]["token_ids"] is None and data["system_fingerprint"] == "fp-test"
    payloads, _ = sse_payloads(post(newer_vllm, {"model": MODEL, "messages": REASON, "stream": True}).content.decode())
    assert any("reasoning" in p["choices"][0]["delta"] for p in payloads)
    assert not any("reasoning_content" in p["choices"][0]["delta"] for p in payloads)
    r = post(newer_vllm, {"model": MODEL, "messages": REASON, "temperature": 9})
    assert r.status_code == 400 and list(r.json()) == ["object", "message", "type", "param", "code"]
    r = requests.post(newer_vllm.base_url + BASE + "/chat/completions", json={}, timeout=10)
    assert r.status_code == 401 and r.text == "Jwt is missing" and r.headers["content-type"].startswith("text/plain")
    r = requests.post(newer_vllm.base_url + BASE + "/chat/completions", json={}, headers={"Authorization": "Bearer x"})
    assert r.status_code == 401 and r.text == "Jwt verification fails"
    assert requests.get(newer_vllm.base_url + BASE + "/models", headers=AUTH, timeout=10).status_code == 404


# ---- the real engine ----------------------------------------------------------------------------------


@pytest.mark.engine
def test_real_engine(vllm_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=vllm_server.base_url + BASE, api_key=API_KEY, max_retries=0, timeout=120)
    r = client.chat.completions.create(model=MODEL, messages=REASON, max_tokens=16, seed=2)
    assert r.model == MODEL and r.id.startswith("chatcmpl-")
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=REASON, max_tokens=12, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert 0 < chunks[-1].usage.completion_tokens <= 12
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
    assert [m.id for m in client.models.list().data] == [MODEL]
