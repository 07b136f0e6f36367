"""Dataoorts (``POST /api/v1``, Cloudflare Workers AI envelope), driven with ``requests`` as its docs do,
against a live uvicorn server with the scripted engine (exact text and bytes asserted)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from server.errors import EngineUnavailableError
from server.types import ChatRequest
from tests.contract import sse_payloads
from tests.helpers import API_KEY, FailingEngine, LiveServer, assert_golden, scripted_settings, threaded_server

URL = "/api/v1"
MODEL = "openai/gpt-oss-120b"
GOLDEN = Path(__file__).parent / "golden" / "dataoorts"
# Cloudflare's published model schema for @cf/openai/gpt-oss-120b (cloudflare/cloudflare-docs,
# src/content/workers-ai-models/gpt-oss-120b.json), the input Dataoorts wraps under `data`.
CF_SCHEMA = GOLDEN / "cloudflare-workers-ai-gpt-oss-120b.json"
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City"}}},
}
# the documented request (wire spec 4.1), verbatim
DOC_EXAMPLE = {
    "model": MODEL,
    "data": {
        "messages": [
            {"role": "system", "content": "You are an expert deep learning engineer"},
            {"role": "user", "content": "What is Deep Learning"},
        ],
        "temperature": 0.1,
        "top_p": 0.9,
        "top_k": 40,
        "max_tokens": 512,
    },
}


def post(
    server: LiveServer,
    body: Any = None,
    *,
    key: str | None = API_KEY,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    stream: bool = False,
) -> requests.Response:
    h = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(server.base_url + URL, data=data, headers=h, timeout=30, stream=stream)


def chat(text: str, **data: Any) -> dict[str, Any]:
    return {"model": MODEL, "data": {"messages": [{"role": "user", "content": text}], **data}}


def cf_error(r: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["result", "success", "errors", "messages"]
    assert body["success"] is False and body["messages"] == []
    (error,) = body["errors"]
    assert list(error) == ["code", "message"] and error["code"] == code
    return body  # type: ignore[no-any-return]


def golden(name: str, actual: str) -> None:
    """Exact bytes, with the core's random tool-call ids normalised."""
    assert_golden(GOLDEN / name, re.sub(r"call_[A-Za-z0-9]{24}", "call_ID", actual))


# ---- request format --------------------------------------------------------------------------------


def test_request_examples_match_cloudflare_input_schema() -> None:
    schema = json.loads(CF_SCHEMA.read_text())["schema"]["input"]
    for body in (DOC_EXAMPLE, chat("weather", tools=[WEATHER_TOOL], stream=True), chat("x", seed=9_999_999_999)):
        jsonschema.validate(body["data"], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(chat("x", temperature=5.5)["data"], schema)


# ---- non-streaming ---------------------------------------------------------------------------------


def test_documented_example(scripted_server: LiveServer) -> None:
    r = post(scripted_server, DOC_EXAMPLE)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["errors", "messages", "result", "success"]
    assert body["errors"] == [] and body["messages"] == [] and body["success"] is True
    result = body["result"]
    assert list(result) == ["response", "tool_calls", "usage"]
    assert result["response"] == "What is Deep Learning"
    assert result["tool_calls"] == []
    usage = result["usage"]
    assert list(usage) == ["completion_tokens", "prompt_tokens", "total_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] > 3
    # compact, raw UTF-8
    assert r.content == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def test_reasoning_is_excluded_and_unicode_raw(scripted_server: LiveServer) -> None:
    r = post(scripted_server, chat("reason"))
    assert r.json()["result"]["response"] == "Hello! How can I help?"
    assert "reasoning" not in r.json()["result"]
    r = post(scripted_server, chat("Grüße, 世界"))
    assert r.json()["result"]["response"] == "Grüße, 世界"
    assert "Grüße, 世界".encode() in r.content


def test_prompt_and_responses_input_forms(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"model": MODEL, "data": {"prompt": "from a prompt"}})
    assert r.json()["result"]["response"] == "from a prompt"
    r = post(scripted_server, {"model": MODEL, "data": {"input": "from input", "instructions": "Be brief."}})
    assert r.json()["result"]["response"] == "from input"
    r = post(scripted_server, {"model": MODEL, "data": {"input": [{"role": "user", "content": "listed"}]}})
    assert r.json()["result"]["response"] == "listed"


def test_model_alias(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {**chat("hi"), "model": "@cf/openai/gpt-oss-120b"})
    assert r.status_code == 200 and r.json()["result"]["response"] == "hi"


@pytest.fixture
def seen(scripted_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> list[ChatRequest]:
    """The core requests the route builds (spied on the live server's service)."""
    service = scripted_server.app.state.ctx.service
    calls: list[ChatRequest] = []
    original = service.prepare

    def spy(request: ChatRequest, **kwargs: Any) -> Any:
        calls.append(request)
        return original(request, **kwargs)

    monkeypatch.setattr(service, "prepare", spy)
    return calls


def test_parameters_reach_the_core(scripted_server: LiveServer, seen: list[ChatRequest]) -> None:
    post(
        scripted_server,
        chat(
            "hi",
            reasoning={"effort": "low"},
            top_k=50,
            seed=9_999_999_999,
            temperature=5,
            top_p=0.001,
            repetition_penalty=1.5,
            frequency_penalty=-2,
            presence_penalty=2,
        ),
    )
    req = seen[-1]
    assert req.reasoning_effort == "low"
    s = req.sampling
    assert (s.top_k, s.seed, s.temperature, s.top_p) == (50, 9_999_999_999, 5, 0.001)
    assert (s.repetition_penalty, s.frequency_penalty, s.presence_penalty) == (1.5, -2, 2)
    post(scripted_server, chat("hi", repetition_penalty=0))
    assert seen[-1].sampling.repetition_penalty is None  # 0 is in range but neutral for the sampler
    post(scripted_server, chat("hi"))
    assert seen[-1].sampling.temperature == 0.6  # Cloudflare's default
    assert seen[-1].reasoning_effort is None


def test_default_and_explicit_max_tokens(scripted_server: LiveServer) -> None:
    usage = post(scripted_server, chat("long")).json()["result"]["usage"]
    assert usage["completion_tokens"] == 256  # Cloudflare's default max_tokens
    usage = post(scripted_server, chat("long", max_tokens=10)).json()["result"]["usage"]
    assert usage["completion_tokens"] == 10


@pytest.mark.parametrize("tool", [WEATHER_TOOL, {"type": "function", "function": WEATHER_TOOL}])
def test_tool_call_both_tool_shapes(scripted_server: LiveServer, tool: dict[str, Any]) -> None:
    result = post(scripted_server, chat("weather", tools=[tool])).json()["result"]
    assert result["response"] == ""
    (call,) = result["tool_calls"]
    assert list(call) == ["id", "type", "function"] and call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_json_mode_forms(scripted_server: LiveServer, seen: list[ChatRequest]) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    post(scripted_server, chat("hi", response_format={"type": "json_schema", "json_schema": schema}))
    assert seen[-1].response_format.type == "json_schema" and seen[-1].response_format.schema == schema
    post(scripted_server, chat("hi", response_format={"type": "json_object"}))
    assert seen[-1].response_format.type == "json_object"


# ---- streaming -------------------------------------------------------------------------------------


def test_stream_classic_form(scripted_server: LiveServer) -> None:
    r = post(scripted_server, chat("reason", stream=True), stream=True)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    raw = r.content.decode()
    payloads, blocks = sse_payloads(raw)
    assert blocks[-1] == "data: [DONE]" and raw.endswith("\n\n")
    *texts, last = payloads
    assert all(list(p) == ["response"] for p in texts)
    assert "".join(p["response"] for p in texts) == "Hello! How can I help?"
    assert list(last) == ["response", "usage"] and last["response"] == ""
    assert list(last["usage"]) == ["prompt_tokens", "completion_tokens", "total_tokens"]
    full = post(scripted_server, chat("reason")).json()["result"]["usage"]
    assert last["usage"]["completion_tokens"] == full["completion_tokens"]
    assert last["usage"]["prompt_tokens"] == full["prompt_tokens"]


def test_stream_tool_calls(scripted_server: LiveServer) -> None:
    raw = post(scripted_server, chat("weather", tools=[WEATHER_TOOL], stream=True)).content.decode()
    payloads, _ = sse_payloads(raw)
    calls = [p for p in payloads if "tool_calls" in p]
    assert len(calls) == 1 and calls[0]["response"] == ""
    (call,) = calls[0]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert "usage" in payloads[-1]


# ---- golden bytes ----------------------------------------------------------------------------------


def test_golden_bytes(scripted_server: LiveServer) -> None:
    golden("reason.json", post(scripted_server, chat("reason")).content.decode())
    golden("reason.sse", post(scripted_server, chat("reason", stream=True)).content.decode())
    golden("weather.json", post(scripted_server, chat("weather", tools=[WEATHER_TOOL])).content.decode())
    golden("weather.sse", post(scripted_server, chat("weather", tools=[WEATHER_TOOL], stream=True)).content.decode())
    golden("error_401.json", post(scripted_server, chat("hi"), key="nope").content.decode())
    golden("error_model.json", post(scripted_server, {**chat("hi"), "model": "meta/llama"}).content.decode())


# ---- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "headers"),
    [
        (None, None),
        ("wrong", None),
        (API_KEY[:-1], None),
        (API_KEY.upper(), None),
        (None, {"X-API-Key": API_KEY}),
        (None, {"Authorization": "Basic c2stdGVzdA=="}),
    ],
)
def test_auth_failures(scripted_server: LiveServer, key: str | None, headers: dict[str, str] | None) -> None:
    r = post(scripted_server, chat("hi"), key=key, headers=headers)
    cf_error(r, 401, 10000)
    assert (
        r.content == b'{"result":null,"success":false,"errors":[{"code":10000,"message":"Authentication error"}],'
        b'"messages":[]}'
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"[1,2,3]",
        b'"a string"',
        b'{"model":"openai/gpt-oss-120b"}',
        b'{"data":{"messages":[{"role":"user","content":"x"}]}}',
        b'{"model":"openai/gpt-oss-120b","data":"hi"}',
        b'{"model":"openai/gpt-oss-120b","data":{"messages":[{"role":"user","content":"x"}],"temperature":NaN}}',
    ],
)
def test_bad_bodies(scripted_server: LiveServer, raw: bytes) -> None:
    cf_error(post(scripted_server, raw=raw), 400, 5004)


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": 5.01}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 51}, "top_k"),
        ({"seed": 0}, "seed"),
        ({"seed": 10_000_000_000}, "seed"),
        ({"repetition_penalty": 2.1}, "repetition_penalty"),
        ({"repetition_penalty": -1}, "repetition_penalty"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"presence_penalty": -2.5}, "presence_penalty"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2**64}, "max_tokens"),
        ({"raw": True}, "raw"),
        ({"lora": "my-adapter"}, "lora"),
        ({"functions": [{"name": "f", "code": "return 1"}]}, "functions"),
        ({"response_format": {"type": "text"}}, "response_format"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]},
            "messages",
        ),
    ],
)
def test_out_of_range_and_invalid_data(scripted_server: LiveServer, data: dict[str, Any], param: str) -> None:
    body = chat("hi")
    body["data"].update(data)
    err = cf_error(post(scripted_server, body), 400, 5004)["errors"][0]
    assert param in err["message"] or param.replace("_", " ") in err["message"].lower()


def test_unknown_model(scripted_server: LiveServer) -> None:
    err = cf_error(post(scripted_server, {**chat("hi"), "model": "gpt-oss-120b"}), 400, 5007)["errors"][0]
    assert err["message"] == "No such model gpt-oss-120b or task"


def test_context_too_long(scripted_server: LiveServer) -> None:
    body = cf_error(post(scripted_server, chat("word " * 140_000)), 400, 8007)
    assert body["result"] == {}
    message = body["errors"][0]["message"]
    assert message.startswith("AiError: AiError: {") and "maximum context length" in message
    upstream = json.loads(message[len("AiError: AiError: ") : message.rindex(" (")])
    assert upstream["type"] == "BadRequestError" and upstream["code"] == 400
    cf_error(post(scripted_server, chat("hi", max_tokens=200_000)), 400, 8007)


def test_body_too_large(scripted_server: LiveServer) -> None:
    raw = b'{"model":"openai/gpt-oss-120b","data":{"prompt":"' + b"a" * (5 * 1024 * 1024) + b'"}}'
    cf_error(post(scripted_server, raw=raw), 413, 3006)


# ---- switches and faults (own servers) -------------------------------------------------------------


def test_error_during_stream(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    engine = FailingEngine(settings.engine.scripted, after=6, error=EngineUnavailableError("The engine died."))
    with threaded_server(settings, engine) as live:
        raw = post(live, chat("long", stream=True)).content.decode()
        payloads, blocks = sse_payloads(raw)
        assert blocks[-1] == "data: [DONE]"
        *texts, error = payloads
        assert texts and all(list(p) == ["response"] for p in texts)
        assert list(error) == ["result", "success", "errors", "messages"] and error["success"] is False
        assert error["errors"][0]["message"] == "The engine died."
        r = post(live, chat("long"))  # the engine's own error (unavailable), not a generic 500
        assert r.status_code == 503 and r.json()["success"] is False
        assert live.app.state.ctx.service.active_requests == 0


@pytest.fixture(scope="module")
def alt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("dataoorts-alt"))
    section = settings.providers.dataoorts
    section.include_reasoning = True
    section.stream_padding = True
    section.error_key_order = "alphabetical"
    section.default_max_tokens = None
    section.default_temperature = None
    with threaded_server(settings) as live:
        yield live


def test_switches_reasoning_padding_error_order(alt_server: LiveServer) -> None:
    result = post(alt_server, chat("reason")).json()["result"]
    assert list(result) == ["reasoning", "response", "tool_calls", "usage"]
    assert result["reasoning"] == "User says hi. Reply politely."
    payloads, _ = sse_payloads(post(alt_server, chat("reason", stream=True)).content.decode())
    assert all(re.fullmatch(r"[A-Za-z0-9]+", p["p"]) for p in payloads)
    assert "".join(p.get("reasoning", "") for p in payloads) == "User says hi. Reply politely."
    assert "".join(p["response"] for p in payloads) == "Hello! How can I help?"
    assert list(post(alt_server, chat("hi"), key="bad").json()) == ["errors", "messages", "result", "success"]
    assert post(alt_server, chat("long")).json()["result"]["usage"]["completion_tokens"] > 256


def test_switch_chat_completion_result(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    settings.providers.dataoorts.result_shape = "chat_completion"
    with threaded_server(settings) as live:
        body = post(live, chat("weather", tools=[WEATHER_TOOL])).json()
    assert list(body) == ["errors", "messages", "result", "success"]
    result = body["result"]
    assert list(result) == ["id", "object", "created", "model", "choices", "usage"]
    assert result["object"] == "chat.completion" and result["model"] == MODEL
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


# ---- the real engine -------------------------------------------------------------------------------


@pytest.mark.engine
def test_real_engine(vllm_server: LiveServer) -> None:
    r = post(vllm_server, chat("What is Deep Learning", max_tokens=16, temperature=0.6))
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["errors", "messages", "result", "success"] and body["success"] is True
    result = body["result"]
    assert isinstance(result["response"], str) and isinstance(result["tool_calls"], list)
    usage = result["usage"]
    assert 0 < usage["completion_tokens"] <= 16 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    raw = post(vllm_server, chat("What is Deep Learning", max_tokens=16, stream=True)).content.decode()
    payloads, blocks = sse_payloads(raw)
    assert blocks[-1] == "data: [DONE]"
    last = payloads[-1]
    assert last["response"] == "" and 0 < last["usage"]["completion_tokens"] <= 16
    assert all(isinstance(p["response"], str) for p in payloads)
