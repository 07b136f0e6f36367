"""AI/ML API route: the docs' `requests` and `openai` SDK clients against a live server (scripted engine),
responses validated against AI/ML API's own OpenAPI schemas, exact bytes pinned by goldens, its error
envelope, the /v1 ownership switch, models endpoints, and one run on the real vLLM engine."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
import requests

from routes.aimlapi import ids
from routes.aimlapi.errors import AUTH_MESSAGE
from tests.cases.aimlapi import check_error
from tests.contract import sse_payloads
from tests.helpers import API_KEY, FailingEngine, LiveServer, assert_golden, scripted_settings, threaded_server

GOLDEN = Path(__file__).parent / "golden" / "aimlapi"
MODEL = "openai/gpt-oss-120b"
HELLO = [{"role": "user", "content": "Hello"}]
REASON = [{"role": "user", "content": "reason"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CALL_ID = re.compile(r'"id":"call_[A-Za-z0-9]{24}"')


# ---- the provider's own schemas (OpenAPI 3.0 -> JSON Schema) --------------------------------------------


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` becomes ``anyOf [..., null]``; everything else is JSON Schema."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


SPEC = json.loads((GOLDEN / "spec-schemas.json").read_text())
CHAT_SCHEMA = to_json_schema(SPEC["chat_completion"])
MODELS_SCHEMA = to_json_schema(SPEC["models"])
_chunk = json.loads(json.dumps(SPEC["chat_completion_chunk"]))
# Documented divergence: the spec types a chunk's finish_reason as a non-null string, but every OpenAI-style
# stream (AI/ML API's own docs' examples included) sends `"finish_reason": null` until the last chunk.
_chunk["properties"]["choices"]["items"]["properties"]["finish_reason"]["nullable"] = True
CHUNK_SCHEMA = to_json_schema(_chunk)


def validate_chunks(payloads: list[dict[str, Any]]) -> None:
    for payload in payloads:
        jsonschema.validate(payload, CHUNK_SCHEMA)


# ---- helpers ------------------------------------------------------------------------------------------


def post(server: LiveServer, body: Any, *, path: str = "/chat/completions", **kw: Any) -> requests.Response:
    headers = {**AUTH, **kw.pop("headers", {})}
    return requests.post(server.base_url + path, json=body, headers=headers, timeout=30, **kw)


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin ids and the clock (the threaded server runs in this process)."""
    monkeypatch.setattr(ids, "now", lambda: 1754554066.0)
    monkeypatch.setattr(ids, "new_id", lambda created: f"gen-{created}-7Rcl38Atg9I9CLPcnE3t")
    monkeypatch.setattr(ids, "new_inference_id", lambda: "00000000-0000-4000-8000-000000000000")
    monkeypatch.setattr(ids, "new_request_id", lambda: "hRNOI9BMsuLeZ76UNdGhS")


def check_golden(name: str, data: bytes) -> None:
    assert_golden(GOLDEN / name, CALL_ID.sub('"id":"call_<id>"', data.decode()))


# ---- non-streaming ------------------------------------------------------------------------------------


def test_docs_requests_example(scripted_server: LiveServer) -> None:
    """The Python sample from AI/ML API's docs, verbatim but for the host."""
    response = requests.post(
        scripted_server.base_url + "/chat/completions",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"},
        json={"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "Hello"}]},
        timeout=30,
    )
    assert response.status_code == 200
    data = response.json()
    jsonschema.validate(data, CHAT_SCHEMA)
    assert re.fullmatch(r"gen-\d{10}-[A-Za-z0-9]{20}", data["id"])
    assert data["id"].split("-")[1] == str(data["created"])
    assert list(data) == ["id", "object", "choices", "created", "model", "usage", "meta"]
    choice = data["choices"][0]
    assert list(choice) == ["index", "finish_reason", "logprobs", "message"]
    assert list(choice["message"]) == ["role", "content", "reasoning_content", "refusal"]
    assert choice["message"]["content"] == "Hello" and choice["logprobs"] is None
    assert choice["message"]["refusal"] is None
    usage = data["usage"]
    assert list(usage) == ["prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert data["meta"] == {"usage": {"credits_used": 0, "usd_spent": 0}}
    assert response.headers["x-aimlapi-credits-used"] == "0" and response.headers["x-aimlapi-usd-spent"] == "0"
    assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["x-inference-id"])
    assert "x-inference-id" in response.headers["access-control-expose-headers"]


def test_golden_reasoning(scripted_server: LiveServer, pinned: None) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": REASON, "reasoning_effort": "high"})
    assert r.status_code == 200
    check_golden("reason.json", r.content)
    assert r.json()["choices"][0]["message"]["reasoning_content"] == "User says hi. Reply politely."


def test_golden_tool_call(scripted_server: LiveServer, pinned: None) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": [{"role": "user", "content": "weather"}], "tools": TOOLS})
    data = r.json()
    jsonschema.validate(data, CHAT_SCHEMA)
    check_golden("weather.json", r.content)
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == ""  # the spec types content as a non-null string
    (call,) = choice["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_openai_sdk_root_base_url(scripted_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=scripted_server.base_url, api_key=API_KEY, max_retries=0)
    r = client.chat.completions.create(
        model=MODEL, messages=REASON, max_completion_tokens=200, extra_body={"top_k": 40, "min_p": 0.05}
    )
    assert r.id.startswith("gen-") and r.model == MODEL
    assert r.choices[0].message.content == "Hello! How can I help?"
    assert (r.choices[0].message.model_extra or {})["reasoning_content"] == "User says hi. Reply politely."


def test_documented_parameters_accepted(scripted_server: LiveServer) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Plain."}, *HELLO],
        "max_tokens": 512,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 1,
        "min_p": 0.001,
        "top_k": 40,
        "repetition_penalty": 1.1,
        "top_a": 0.5,
        "frequency_penalty": -2,
        "presence_penalty": 2,
        "reasoning_effort": "low",
        "echo": False,
        "provider": "auto",
        "prediction": {"type": "content", "content": "Hi"},
        "response_format": {"type": "text"},
        "logit_bias": {"1000": -100},
        "parallel_tool_calls": True,
    }
    r = post(scripted_server, body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello"


def test_max_tokens_length(scripted_server: LiveServer) -> None:
    data = post(
        scripted_server, {"model": MODEL, "messages": [{"role": "user", "content": "long"}], "max_tokens": 10}
    ).json()
    assert data["choices"][0]["finish_reason"] == "length" and data["usage"]["completion_tokens"] == 10


# ---- streaming ----------------------------------------------------------------------------------------


def test_golden_stream(scripted_server: LiveServer, pinned: None) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": REASON, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert "x-inference-id" in r.headers and "x-aimlapi-credits-used" not in r.headers
    check_golden("reason.sse", r.content)
    payloads, blocks = sse_payloads(r.content.decode())
    validate_chunks(payloads)
    assert blocks[-1] == "data: [DONE]"
    *deltas, finish, usage = payloads
    assert all(p["usage"] is None for p in [*deltas, finish])
    assert "".join(p["choices"][0]["delta"].get("reasoning_content", "") for p in deltas) == (
        "User says hi. Reply politely."
    )
    assert "".join(p["choices"][0]["delta"]["content"] for p in deltas) == "Hello! How can I help?"
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == [] and set(usage["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["meta"] == {"usage": {"credits_used": 0, "usd_spent": 0}}
    full = post(scripted_server, {"model": MODEL, "messages": REASON}).json()
    assert usage["usage"] == {k: full["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def test_golden_stream_tool_call(scripted_server: LiveServer, pinned: None) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "weather"}], "tools": TOOLS, "stream": True}
    r = post(scripted_server, body)
    check_golden("weather.sse", r.content)
    payloads, _ = sse_payloads(r.content.decode())
    validate_chunks(payloads)
    calls = [c for p in payloads if p["choices"] for c in p["choices"][0]["delta"].get("tool_calls") or []]
    (call,) = calls  # sent whole: the schema requires id, type and name on every tool-call delta
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_openai_sdk_stream(scripted_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=scripted_server.base_url, api_key=API_KEY, max_retries=0)
    chunks = list(client.chat.completions.create(model=MODEL, messages=REASON, stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "Hello! How can I help?"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("aimlapi-failing"))
    engine = FailingEngine(settings.engine.scripted, after=12, error=RuntimeError("engine died"))
    with threaded_server(settings, engine) as live:
        yield live


def test_error_during_stream(failing_server: LiveServer) -> None:
    r = post(failing_server, {"model": MODEL, "messages": REASON, "stream": True})
    assert r.status_code == 200
    payloads, blocks = sse_payloads(r.content.decode())
    assert blocks[-1] == "data: [DONE]"
    error = payloads[-1]
    assert list(error) == ["id", "object", "created", "model", "error", "choices"]
    assert error["error"]["code"] == "server_error" and "RuntimeError" in error["error"]["message"]
    assert error["choices"][0]["finish_reason"] == "error"
    client = openai.OpenAI(base_url=failing_server.base_url, api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=MODEL, messages=REASON, stream=True))
    check_error(post(failing_server, {"model": MODEL, "messages": REASON}), 500)


# ---- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {API_KEY[:-1]}"},
        {"X-API-Key": API_KEY},
        {"Authorization": f"Basic {API_KEY}"},
    ],
)
def test_auth_failures(scripted_server: LiveServer, headers: dict[str, str]) -> None:
    r = requests.post(
        scripted_server.base_url + "/chat/completions",
        json={"model": MODEL, "messages": HELLO},
        headers=headers,
        timeout=30,
    )
    check_error(r, 401)
    assert r.json()["message"] == AUTH_MESSAGE


def test_error_golden(scripted_server: LiveServer, pinned: None) -> None:
    r = requests.post(
        scripted_server.base_url + "/chat/completions", json={"model": MODEL, "messages": HELLO}, timeout=30
    )
    check_golden("error-401.json", r.content)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"[1,2]", b'"text"'],
)
def test_bad_bodies(scripted_server: LiveServer, raw: bytes) -> None:
    r = requests.post(
        scripted_server.base_url + "/chat/completions",
        data=raw,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=30,
    )
    check_error(r, 400)
    assert r.json()["message"].startswith("Body validation error!")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 0.001}, "top_p"),
        ({"top_p": 1.1}, "top_p"),
        ({"min_p": 0}, "min_p"),
        ({"min_p": 1}, "min_p"),
        ({"seed": 0}, "seed"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"top_a": 1.5}, "top_a"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"stream_options": {}}, "stream_options"),
        ({"logit_bias": {"1": 101}}, "logit_bias"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages"),
        ({"tools": TOOLS * 129}, "tools"),
    ],
)
def test_out_of_range(scripted_server: LiveServer, extra: dict[str, Any], param: str) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": HELLO, **extra})
    check_error(r, 400)
    assert r.json()["message"].startswith("Body validation error!") and param in r.json()["message"]


def test_missing_model_and_unknown_model(scripted_server: LiveServer) -> None:
    check_error(post(scripted_server, {"messages": HELLO}), 400)
    r = post(scripted_server, {"model": "gpt-oss-120b", "messages": HELLO})
    check_error(r, 400)
    assert r.json()["message"] == (
        "Body validation error! Invalid enum value. Expected 'openai/gpt-oss-120b', received 'gpt-oss-120b'"
    )


def test_context_too_long(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": [{"role": "user", "content": "word " * 140_000}]})
    check_error(r, 400)
    assert "maximum context length" in r.json()["message"]
    r = post(scripted_server, {"model": MODEL, "messages": HELLO, "max_tokens": 200_000})
    check_error(r, 400)


def test_client_request_id_echoed_or_dropped(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": HELLO}, headers={"X-Client-Request-Id": "job-42:a.b_c"})
    assert r.headers["x-client-request-id"] == "job-42:a.b_c"
    r = post(scripted_server, {"model": MODEL, "messages": HELLO}, headers={"X-Client-Request-Id": "bad id!"})
    assert r.status_code == 200 and "x-client-request-id" not in r.headers
    r = requests.post(
        scripted_server.base_url + "/chat/completions", json={}, timeout=30, headers={"X-Client-Request-Id": "x" * 128}
    )
    assert r.status_code == 401 and r.headers["x-client-request-id"] == "x" * 128


# ---- models -------------------------------------------------------------------------------------------


def test_models_public_and_schema_valid(scripted_server: LiveServer) -> None:
    for path in ("/models", "/api/v1/models"):
        r = requests.get(scripted_server.base_url + path, timeout=10)
        assert r.status_code == 200
        data = r.json()
        jsonschema.validate(data, MODELS_SCHEMA)
        (card,) = data["data"]
        assert list(card) == ["id", "info", "type", "aliases", "tags"]
        assert card["id"] == MODEL and card["info"]["contextLength"] == 128000
    r = requests.get(scripted_server.base_url + "/models?include=pricing,capabilities", timeout=10)
    card = r.json()["data"][0]
    jsonschema.validate(r.json(), MODELS_SCHEMA)
    assert "pricing" in card and "capabilities" in card and "modalities" not in card


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("type=openai/chat-completions", 1),
        ("type=openai/images", 0),
        ("capabilities=TOOLS,vision", 1),
        ("output_modalities=video", 0),
        ("id=OPENAI/GPT-OSS-120B&input_modalities=text", 1),
        ("tags=x&type=y", 0),
    ],
)
def test_models_filters(scripted_server: LiveServer, query: str, count: int) -> None:
    assert len(requests.get(f"{scripted_server.base_url}/models?{query}", timeout=10).json()["data"]) == count


def test_models_etag(scripted_server: LiveServer) -> None:
    r = requests.get(scripted_server.base_url + "/models", timeout=10)
    again = requests.get(scripted_server.base_url + "/models", headers={"If-None-Match": r.headers["etag"]}, timeout=10)
    assert again.status_code == 304 and again.content == b""


def test_model_by_id(scripted_server: LiveServer) -> None:
    r = requests.get(scripted_server.base_url + "/model/openai/gpt-oss-120b", timeout=10)
    assert r.status_code == 200
    data = r.json()
    assert list(data) == ["object", "data"] and data["object"] == "model" and data["data"]["id"] == MODEL
    check_error(requests.get(scripted_server.base_url + "/model/openai/gpt-4o", timeout=10), 404)


# ---- the /v1 ownership switch ---------------------------------------------------------------------------


def test_default_v1_is_openai(scripted_server: LiveServer) -> None:
    r = post(scripted_server, {"model": MODEL, "messages": HELLO}, path="/v1/chat/completions")
    assert r.json()["id"].startswith("chatcmpl-")
    assert requests.get(scripted_server.base_url + "/v1/models", timeout=10).status_code == 401


@pytest.fixture(scope="module")
def v1_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("aimlapi-v1"))
    settings.providers.v1_owner = "aimlapi"
    with threaded_server(settings) as live:
        yield live


def test_v1_owned_by_aimlapi(v1_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=v1_server.base_url + "/v1", api_key=API_KEY, max_retries=0)
    r = client.chat.completions.create(model=MODEL, messages=REASON)
    assert r.id.startswith("gen-") and r.choices[0].message.content == "Hello! How can I help?"
    stream = client.chat.completions.create(model=MODEL, messages=REASON, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello! How can I help?"
    models = requests.get(v1_server.base_url + "/v1/models", timeout=10)  # no key: AI/ML API's list is public
    assert models.status_code == 200 and models.json()["data"][0]["id"] == MODEL
    jsonschema.validate(models.json(), MODELS_SCHEMA)
    check_error(
        requests.post(
            v1_server.base_url + "/v1/chat/completions", json={"model": MODEL, "messages": HELLO}, timeout=30
        ),
        401,
    )
    # unprefixed paths stay AI/ML API's; plain OpenAI moves to /openai/v1
    assert post(v1_server, {"model": MODEL, "messages": HELLO}).json()["id"].startswith("gen-")
    moved = post(v1_server, {"model": "gpt-oss-120b", "messages": HELLO}, path="/openai/v1/chat/completions")
    assert moved.status_code == 200 and moved.json()["id"].startswith("chatcmpl-")


# ---- switches -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def switched_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("aimlapi-switched"))
    settings.providers.aimlapi = settings.providers.aimlapi.model_copy(
        update={
            "unknown_model_status": 404,
            "validation_detail_in_message": False,
            "tool_call_content": "null",
            "stream_usage_always": False,
            "stream_role_every_chunk": False,
            "stream_whole_tool_calls": False,
            "include_meta": False,
            "usd_per_million_prompt_tokens": 1.0,
            "usd_per_million_completion_tokens": 2.0,
            "models_aliases": False,
        }
    )
    with threaded_server(settings) as live:
        yield live


def test_switches(switched_server: LiveServer) -> None:
    check_error(post(switched_server, {"model": "x", "messages": HELLO}), 404)
    r = post(switched_server, {"model": MODEL, "messages": HELLO, "temperature": 5})
    assert r.json()["message"] == "Body validation error!"
    r = post(switched_server, {"model": MODEL, "messages": [{"role": "user", "content": "weather"}], "tools": TOOLS})
    data = r.json()
    assert data["choices"][0]["message"]["content"] is None and "meta" not in data
    u = data["usage"]
    usd = (u["prompt_tokens"] * 1.0 + u["completion_tokens"] * 2.0) / 1e6
    assert float(r.headers["x-aimlapi-usd-spent"]) == pytest.approx(usd)
    assert int(r.headers["x-aimlapi-credits-used"]) == round(usd * 2_000_000)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "weather"}], "tools": TOOLS, "stream": True}
    payloads, _ = sse_payloads(post(switched_server, body).content.decode())
    assert payloads[-1]["choices"] != []  # no usage chunk without include_usage
    roles = [p["choices"][0]["delta"].get("role") for p in payloads]
    assert roles[0] == "assistant" and set(roles[1:]) == {None}
    calls = [c for p in payloads for c in p["choices"][0]["delta"].get("tool_calls") or []]
    assert len(calls) > 1 and "id" in calls[0] and all("id" not in c for c in calls[1:])
    body["stream_options"] = {"include_usage": True}
    payloads, _ = sse_payloads(post(switched_server, body).content.decode())
    assert payloads[-1]["choices"] == [] and "meta" not in payloads[-1]
    assert requests.get(switched_server.base_url + "/models", timeout=10).status_code == 404


# ---- the real engine ----------------------------------------------------------------------------------


@pytest.mark.engine
def test_real_engine(vllm_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=vllm_server.base_url, api_key=vllm_server.api_key, max_retries=0, timeout=120)
    r = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=16, seed=1)
    raw = requests.post(
        vllm_server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": MODEL, "messages": HELLO, "max_tokens": 16},
        timeout=120,
    )
    jsonschema.validate(raw.json(), CHAT_SCHEMA)
    assert r.id.startswith("gen-") and r.model == MODEL
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 16
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    resp = requests.post(
        vllm_server.base_url + "/chat/completions",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={"model": MODEL, "messages": HELLO, "max_tokens": 12, "stream": True},
        timeout=120,
    )
    payloads, blocks = sse_payloads(resp.content.decode())
    validate_chunks(payloads)
    assert blocks[-1] == "data: [DONE]"
    assert payloads[-1]["choices"] == [] and 0 < payloads[-1]["usage"]["completion_tokens"] <= 12
    finishes = [p["choices"][0]["finish_reason"] for p in payloads if p["choices"] and p["choices"][0]["finish_reason"]]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
