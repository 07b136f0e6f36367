"""Oxen.ai (``/api/ai``), driven by the official ``openai`` SDK with ``base_url=<server>/api/ai`` and by raw
HTTP, against a live uvicorn server with the scripted engine. Responses are validated against Oxen's own
OpenAPI document (hub v0.243.1, kept beside the goldens)."""

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

from routes.oxen import ids
from server.errors import EngineUnavailableError
from tests.contract import sse_payloads
from tests.helpers import API_KEY, FailingEngine, LiveServer, assert_golden, scripted_settings, threaded_server

CHAT = "/api/ai/chat/completions"
GOLDEN = Path(__file__).parent / "golden" / "oxen"
UUID_ID = re.compile(r"chatcmpl-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
# the gpt-oss-120b page's "All parameters" example (wire spec 5.2)
ALL_PARAMS = {
    "temperature": 0.7,
    "max_tokens": 1024,
    "stream": False,
    "top_p": 1.0,
    "frequency_penalty": 0,
    "presence_penalty": 0,
}


# ---- Oxen's OpenAPI (3.0) as JSON Schema -----------------------------------------------------------


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable`` -> JSON Schema null types; ``$ref`` kept (resolved against the document)."""
    if isinstance(node, list):
        return [_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if k not in ("nullable", "example")}
    if node.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


OPENAPI = _to_json_schema(json.loads((GOLDEN / "oxen-hub-api-openapi.json").read_text()))


def validate(instance: Any, component: str) -> None:
    schema = {"$ref": f"#/components/schemas/{component}", "components": OPENAPI["components"]}
    jsonschema.validate(instance, schema)


def sorted_everywhere(value: Any) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(sorted_everywhere(v) for v in value.values())
    if isinstance(value, list):
        return all(sorted_everywhere(v) for v in value)
    return True


# ---- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
def client(scripted_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted_server.base_url + "/api/ai", api_key=scripted_server.api_key, max_retries=0)


def post(
    server: LiveServer,
    body: Any = None,
    *,
    key: str | None = API_KEY,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    h = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else json.dumps(body).encode()
    return requests.post(server.base_url + CHAT, data=data, headers=h, timeout=30)


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": text}], **extra}


def oxen_error(r: requests.Response, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error", "status", "status_message"]
    assert body["status"] == "error" and body["status_message"] == kind == body["error"]["type"]
    assert list(body["error"])[:2] == ["type", "title"]
    return body["error"]  # type: ignore[no-any-return]


def golden(name: str, actual: str) -> None:
    assert_golden(GOLDEN / name, re.sub(r"call_[A-Za-z0-9]{24}", "call_ID", actual))


# ---- chat completions ------------------------------------------------------------------------------


def test_sdk_non_streaming(client: openai.OpenAI, scripted_server: LiveServer) -> None:
    r = client.chat.completions.create(
        model="gpt-oss-120b", messages=[{"role": "user", "content": "Bonjour, ça va?"}], **ALL_PARAMS
    )
    assert r.object == "chat.completion" and r.model == "gpt-oss-120b"
    assert UUID_ID.fullmatch(r.id)
    assert r.choices[0].message.content == "Bonjour, ça va?" and r.choices[0].finish_reason == "stop"
    assert r.usage is not None and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    raw = post(scripted_server, chat("reason", **ALL_PARAMS))
    body = raw.json()
    validate(body, "ChatCompletionResponse")
    assert list(body) == ["id", "object", "created", "model", "choices", "usage"]
    assert list(body["choices"][0]) == ["index", "message", "finish_reason"]
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello! How can I help?"}
    assert list(body["usage"]) == ["prompt_tokens", "completion_tokens", "total_tokens"]
    assert raw.content == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def test_request_examples_match_oxen_request_schema() -> None:
    for body in (chat("hi", **ALL_PARAMS), chat("weather", tools=WEATHER, tool_choice="auto"), chat("x", stream=True)):
        validate(body, "ChatCompletionRequest")


def test_sdk_streaming_sorted_chunks(client: openai.OpenAI, scripted_server: LiveServer) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-oss-120b", messages=[{"role": "user", "content": "reason"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! How can I help?"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["stop"]
    # a role-only first chunk (the SDKs' stream helpers need the role), then deltas without it
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert all(c.choices[0].delta.role is None for c in chunks[1:])
    assert all(c.usage is None for c in chunks)

    r = requests.post(
        scripted_server.base_url + CHAT,
        json=chat("reason", stream=True),
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    raw = r.content.decode()
    payloads, blocks = sse_payloads(raw)
    assert blocks[-1] == "data: [DONE]" and raw.endswith("\n\n")
    for block, payload in zip(blocks, payloads, strict=False):
        assert sorted_everywhere(payload)
        assert block == "data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        assert list(payload) == ["choices", "created", "id", "model", "object"]
        assert list(payload["choices"][0]) == ["delta", "finish_reason", "index"]
    assert payloads[-1]["choices"][0] == {"delta": {}, "finish_reason": "stop", "index": 0}
    assert len({p["id"] for p in payloads}) == 1 and UUID_ID.fullmatch(payloads[0]["id"])


def test_stream_usage_when_asked(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-oss-120b",
            messages=[{"role": "user", "content": "reason"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    full = client.chat.completions.create(model="gpt-oss-120b", messages=[{"role": "user", "content": "reason"}])
    assert full.usage is not None and chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_tool_calls(client: openai.OpenAI, scripted_server: LiveServer) -> None:
    r = client.chat.completions.create(
        model="gpt-oss-120b", messages=[{"role": "user", "content": "weather"}], tools=WEATHER
    )  # type: ignore[arg-type]
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    body = post(scripted_server, chat("weather", tools=WEATHER)).json()
    validate(body, "ChatCompletionResponse")
    message = body["choices"][0]["message"]
    assert list(message) == ["content", "role", "tool_calls"]
    assert list(message["tool_calls"][0]) == ["id", "index", "type", "function"]
    assert message["tool_calls"][0]["index"] == 0

    stream = client.chat.completions.create(
        model="gpt-oss-120b", messages=[{"role": "user", "content": "weather"}], tools=WEATHER, stream=True
    )  # type: ignore[arg-type]
    args, names, finish = "", [], None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            names += [tc.function.name] if tc.function and tc.function.name else []
            args += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert names == ["get_weather"] and json.loads(args) == {"city": "Paris"} and finish == "tool_calls"


def test_max_tokens_and_stop(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="gpt-oss-120b", messages=[{"role": "user", "content": "long"}], max_tokens=10
    )
    assert r.choices[0].finish_reason == "length" and r.usage is not None and r.usage.completion_tokens == 10
    r = client.chat.completions.create(
        model="gpt-oss-120b", messages=[{"role": "user", "content": "long"}], stop=["w3 "]
    )
    assert r.choices[0].message.content == "w0 w1 w2 "


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "new_id", lambda: "chatcmpl-00000000-0000-4000-8000-000000000000")
    monkeypatch.setattr(ids, "now", lambda: 1775090332)


@pytest.mark.usefixtures("pinned")
def test_golden_bytes(scripted_server: LiveServer) -> None:
    golden("reason.json", post(scripted_server, chat("reason")).content.decode())
    golden("reason.sse", post(scripted_server, chat("reason", stream=True)).content.decode())
    golden("weather.json", post(scripted_server, chat("weather", tools=WEATHER)).content.decode())
    golden("weather.sse", post(scripted_server, chat("weather", tools=WEATHER, stream=True)).content.decode())
    golden("error_401.json", post(scripted_server, chat("hi"), key="nope").content.decode())
    golden("error_model.json", post(scripted_server, chat("hi", model="gpt-4o")).content.decode())


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
    err = oxen_error(post(scripted_server, chat("hi"), key=key, headers=headers), 401, "unauthenticated")
    assert API_KEY not in json.dumps(err)
    r = requests.get(scripted_server.base_url + "/api/ai/models", timeout=10)
    oxen_error(r, 401, "unauthenticated")


def test_sdk_error_types(scripted_server: LiveServer, client: openai.OpenAI) -> None:
    bad = openai.OpenAI(base_url=scripted_server.base_url + "/api/ai", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-oss-120b", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="bad-model-name", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body == {"message": "Model not found: bad-model-name"}
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-oss-120b", messages=[{"role": "user", "content": "hi"}], temperature=2.5
        )


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"[1,2,3]",
        b'"a string"',
        b'{"model":"gpt-oss-120b","messages":[{"role":"user","content":"x"}],"top_p":NaN}',
    ],
)
def test_bad_bodies(scripted_server: LiveServer, raw: bytes) -> None:
    oxen_error(post(scripted_server, raw=raw), 400, "invalid_params")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "You must specify a model to call"),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "You must specify a model to call"),
        ({"model": "gpt-oss-120b"}, "Messages array cannot be empty"),
        ({"model": "gpt-oss-120b", "messages": []}, "Messages array cannot be empty"),
        (chat("x", temperature=2.01), "temperature"),
        (chat("x", temperature=-1), "temperature"),
        (chat("x", top_p=0), "top_p"),
        (chat("x", top_p=1.5), "top_p"),
        (chat("x", max_tokens=0), "max_tokens"),
        (chat("x", frequency_penalty=3), "frequency_penalty"),
        (chat("x", presence_penalty=-3), "presence_penalty"),
        (chat("x", n=2), "n"),
        (chat("x", tool_choice="sometimes"), "tool_choice"),
        ({"model": "gpt-oss-120b", "messages": "hi"}, "messages"),
        ({"model": "gpt-oss-120b", "messages": [{"role": "user"}]}, "messages.0"),
        (
            {
                "model": "gpt-oss-120b",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/x"}}]}
                ],
            },
            "not supported",
        ),
        (
            {
                "model": "gpt-oss-120b",
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_url": "http://127.0.0.1:1/x.pdf"}}]}
                ],
            },
            "not supported",
        ),
    ],
)
def test_invalid_params(scripted_server: LiveServer, body: dict[str, Any], detail: str) -> None:
    err = oxen_error(post(scripted_server, body), 400, "invalid_params")
    assert err["title"] == "Invalid parameters supplied, please check your request and try again."
    assert detail in err["detail"]


def test_unknown_model(scripted_server: LiveServer) -> None:
    r = post(scripted_server, chat("hi", model="bad-model-name"))
    assert r.status_code == 404 and r.content == b'{"error":{"message":"Model not found: bad-model-name"}}'


def test_context_too_long(scripted_server: LiveServer) -> None:
    err = oxen_error(post(scripted_server, chat("word " * 140_000)), 400, "invalid_params")
    assert "maximum context length" in err["detail"]
    oxen_error(post(scripted_server, chat("hi", max_tokens=200_000)), 400, "invalid_params")


def test_body_too_large(scripted_server: LiveServer) -> None:
    raw = b'{"model":"gpt-oss-120b","messages":[{"role":"user","content":"' + b"a" * (5 * 1024 * 1024) + b'"}]}'
    oxen_error(post(scripted_server, raw=raw), 413, "invalid_params")


def test_unknown_fields_ignored(scripted_server: LiveServer) -> None:
    r = post(scripted_server, chat("hi", target_namespace="my-org", chat_template="{{ evil }}", user="u1"))
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "hi"


# ---- models ----------------------------------------------------------------------------------------


def test_models_with_sdk(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data] == ["gpt-oss-120b"]
    model = client.models.retrieve("gpt-oss-120b")
    assert model.id == "gpt-oss-120b" and model.owned_by == "oxen"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_model_objects_match_openapi(scripted_server: LiveServer) -> None:
    h = {"Authorization": f"Bearer {API_KEY}"}
    listing = requests.get(scripted_server.base_url + "/api/ai/models", headers=h, timeout=10).json()
    validate(listing, "ListModelsResponse")
    model = requests.get(scripted_server.base_url + "/api/ai/models/gpt-oss-120b", headers=h, timeout=10).json()
    validate(model, "Model")
    assert listing["data"] == [model]
    assert model["capabilities"] == {"input": ["text"], "output": ["text"]} and model["endpoint"] == "/chat/completions"
    assert model["model_type"] == "base" and model["deployments"] == [] and model["pricing"]["method"] == "token"
    r = requests.get(
        scripted_server.base_url + "/api/ai/models/gpt-oss-120b?deployment_status=live", headers=h, timeout=10
    )
    assert r.json() == model
    r = requests.get(scripted_server.base_url + "/api/ai/models/nope", headers=h, timeout=10)
    assert r.status_code == 404 and r.json() == {"error": {"message": "Model not found: nope"}}


def test_model_filters_and_search(scripted_server: LiveServer) -> None:
    h = {"Authorization": f"Bearer {API_KEY}"}

    def ids(path: str) -> list[str]:
        r = requests.get(scripted_server.base_url + path, headers=h, timeout=10)
        assert r.status_code == 200, r.text
        return [m["id"] for m in r.json()["data"]]

    assert ids("/api/ai/models?developer_name=OpenAI") == ["gpt-oss-120b"]
    assert ids("/api/ai/models?developer_name=Anthropic") == []
    assert ids("/api/ai/models/search?search=oss") == ["gpt-oss-120b"]
    assert ids("/api/ai/models/search?search=claude") == []


def test_request_schema_is_what_we_accept(scripted_server: LiveServer) -> None:
    """Both schema keys hold one real JSON Schema, and it agrees with the server on what is valid."""
    h = {"Authorization": f"Bearer {API_KEY}"}
    model = requests.get(scripted_server.base_url + "/api/ai/models/gpt-oss-120b", headers=h, timeout=10).json()
    schema = model["json_request_schema"]
    assert model["request_schema"] == schema
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert set(schema["required"]) == {"model", "messages"}
    bodies = [
        chat("hi", **ALL_PARAMS),
        chat("weather", tools=WEATHER, tool_choice={"type": "function", "function": {"name": "get_weather"}}),
        chat("hi", stop="w", seed=7, reasoning_effort="low", target_namespace="ox"),
        chat("hi", temperature=3),
        chat("hi", top_p=0),
        chat("hi", max_tokens=0),
        chat("hi", reasoning_effort="max"),
        {"model": "gpt-oss-120b"},
        {"model": "gpt-oss-120b", "messages": []},
        {"messages": [{"role": "user", "content": "hi"}]},
        {"model": "gpt-oss-120b", "messages": [{"role": "robot", "content": "hi"}]},
    ]
    for body in bodies:
        accepted = post(scripted_server, body).status_code == 200
        assert validator.is_valid(body) == accepted, body


# ---- switches and faults (own servers) -------------------------------------------------------------


def test_error_during_stream(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    engine = FailingEngine(settings.engine.scripted, after=6, error=EngineUnavailableError("The engine died."))
    with threaded_server(settings, engine) as live:
        payloads, blocks = sse_payloads(post(live, chat("long", stream=True)).content.decode())
        assert blocks[-1] == "data: [DONE]"
        *chunks, error = payloads
        assert chunks and all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert error == {
            "error": {"type": "unknown_error", "title": "An unknown error occurred.", "detail": "The engine died."},
            "status": "error",
            "status_message": "unknown_error",
        }
        oxen_error(post(live, chat("long")), 503, "unknown_error")  # the engine's own status, not a generic 500
        assert live.app.state.ctx.service.active_requests == 0


@pytest.fixture(scope="module")
def alt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("oxen-alt"))
    section = settings.providers.oxen
    section.sort_keys = "all"
    section.reasoning_field = "reasoning_content"
    section.stream_role_chunk = False
    section.stream_usage = False
    with threaded_server(settings) as live:
        yield live


def test_switches(alt_server: LiveServer) -> None:
    body = post(alt_server, chat("reason")).json()
    assert sorted_everywhere(body)
    assert body["choices"][0]["message"]["reasoning_content"] == "User says hi. Reply politely."
    payloads, _ = sse_payloads(
        post(alt_server, chat("reason", stream=True, stream_options={"include_usage": True})).content.decode()
    )
    assert "role" not in payloads[0]["choices"][0]["delta"]  # the role chunk switched off
    reasoning = "".join(p["choices"][0]["delta"].get("reasoning_content", "") for p in payloads)
    assert reasoning == "User says hi. Reply politely."
    assert all(p["choices"] for p in payloads)  # no usage chunk
    h = {"Authorization": f"Bearer {API_KEY}"}
    assert sorted_everywhere(
        requests.get(alt_server.base_url + "/api/ai/models/gpt-oss-120b", headers=h, timeout=10).json()
    )


# ---- the real engine -------------------------------------------------------------------------------


@pytest.mark.engine
def test_real_engine(vllm_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=vllm_server.base_url + "/api/ai", api_key=vllm_server.api_key, max_retries=0)
    messages: Any = [{"role": "user", "content": "Hello"}]
    r = client.chat.completions.create(model="gpt-oss-120b", messages=messages, max_tokens=16)
    assert UUID_ID.fullmatch(r.id) and r.model == "gpt-oss-120b"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 16
    validate(r.model_dump(exclude_unset=True), "ChatCompletionResponse")
    chunks = list(
        client.chat.completions.create(
            model="gpt-oss-120b", messages=messages, max_tokens=16, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 16
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishes) == 1 and finishes[0] in ("stop", "length")
    assert [m.id for m in client.models.list().data] == ["gpt-oss-120b"]
