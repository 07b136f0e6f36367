"""Ollama's API on the wire (scripted engine): ``/api/generate``'s contract and exact bytes, Go's JSON, headers,
options into the core, context truncation, refusals, the paths beside the other wire APIs under ``/api``, errors
mid-stream, and a client that leaves mid-stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
import requests

from routes.ollama import ids, names
from routes.ollama.request import keep_alive_seconds
from server.errors import EngineUnavailableError, InvalidRequestError
from server.harmony.encoding import get_encoding
from tests.cases.ollama import pin
from tests.helpers import (
    API_KEY,
    SCRIPT_RULES,
    FailingEngine,
    LiveServer,
    WatchedEngine,
    assert_golden,
    scripted_settings,
    threaded_server,
)

MODEL = "gpt-oss:120b"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
GOLDEN = Path(__file__).parent / "golden" / "ollama"
DURATIONS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
RULES = [
    *SCRIPT_RULES,
    {"match": "^bad call$", "text": "<|channel|>commentary to=functions.f <|constrain|>json<|message|>[1,2]<|call|>"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, WatchedEngine]]:
    settings = scripted_settings(tmp_path_factory.mktemp("ollama-route"), rules=RULES)
    settings.limits.max_output_tokens = 1000
    engine = WatchedEngine(settings.engine.scripted)
    with threaded_server(settings, engine) as live:
        yield live, engine


@pytest.fixture
def live(server: tuple[LiveServer, WatchedEngine]) -> LiveServer:
    return server[0]


def post(live: LiveServer, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(live.base_url + path, json=body, headers=AUTH if headers is None else headers, timeout=30)


def lines(r: requests.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in r.text.splitlines()]


def normalized(raw: bytes) -> str:
    """Exact bytes, the measured durations aside (each must be a positive integer)."""
    text = raw.decode()
    for line in text.splitlines():
        body = json.loads(line)
        for key in DURATIONS:
            if key in body:
                assert isinstance(body[key], int) and body[key] > 0
                text = text.replace(f'"{key}":{body[key]}', f'"{key}":<measured>', 1)
    return text


def test_generate_bytes(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    pin(monkeypatch)
    whole = post(live, "/api/generate", {"model": MODEL, "prompt": "reason", "stream": False})
    assert whole.headers["content-type"] == "application/json; charset=utf-8"
    assert_golden(GOLDEN / "generate.json", normalized(whole.content))
    streamed = post(live, "/api/generate", {"model": MODEL, "prompt": "reason"})  # streams unless stream: false
    assert streamed.headers["content-type"] == "application/x-ndjson"
    assert_golden(GOLDEN / "generate.ndjson", normalized(streamed.content))
    *parts, last = lines(streamed)
    assert "".join(p["response"] for p in parts) == whole.json()["response"] == "Hello! How can I help?"
    assert "".join(p.get("thinking", "") for p in parts) == whole.json()["thinking"]
    assert last["context"] == whole.json()["context"] and last["done"] and not any(p["done"] for p in parts)


def test_generate_contract(live: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "reason", "stream": False}
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
        r = post(live, "/api/generate", body, headers)
        assert (r.status_code, r.json()) == (401, {"error": "unauthorized"})
    refusals = [
        ({"model": "llama3.2"}, 404, "model 'llama3.2' not found"),
        ({"model": ""}, 404, "model '' not found"),  # chat says "model is required"
        ({"model": "a b"}, 400, "invalid model name"),
        ({"options": {"num_predict": "ten"}}, 400, 'option "num_predict" must be of type integer'),
        ({"options": {"stop": "END"}}, 400, 'option "stop" must be of type array'),
        ({"options": {"temperature": 3}}, 400, 'option "temperature" must be from 0 to 2'),
        ({"options": []}, 400, "json: cannot unmarshal array into Go struct field .options"),
        ({"think": 1}, 400, 'think must be a boolean or string ("high", "medium", "low", true, or false)'),
        ({"format": "xml"}, 400, 'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'),
        ({"keep_alive": "soon"}, 400, 'time: invalid duration "soon"'),
        ({"keep_alive": True}, 400, "Unsupported type: 'bool'"),
        ({"top_logprobs": 21}, 400, "top_logprobs must be between 0 and 20"),
        ({"raw": True, "system": "x"}, 400, "raw mode does not support template, system, or context"),
        ({"raw": True}, 400, "raw mode is not supported"),
        ({"template": "{{ .Prompt }}"}, 400, "template is not supported"),
        ({"images": ["aGk="]}, 400, "this model does not support images"),
        ({"context": [1, 2, 3]}, 400, "context is not a conversation this server returned"),
        ({"context": [10**7]}, 400, "context holds a token id outside the vocabulary"),
    ]
    for extra, status, text in refusals:
        r = post(live, "/api/generate", {**body, **extra})
        assert r.status_code == status and list(r.json()) == ["error"], (extra, r.text)
        assert r.json()["error"].startswith(text), (extra, r.text)
        assert r.headers["content-type"] == "application/json; charset=utf-8"
    chat = post(live, "/api/chat", {"model": "", "messages": []})
    assert (chat.status_code, chat.json()) == (400, {"error": "model is required"})
    for keep_alive in ("5m", "1h30m", 300, -1, "-1s", "0"):
        assert post(live, "/api/generate", {**body, "keep_alive": keep_alive}).status_code == 200, keep_alive


def test_load_and_unload(live: LiveServer) -> None:
    for path, body, key in (("/api/chat", {"messages": []}, "message"), ("/api/generate", {}, "response")):
        loaded = post(live, path, {"model": MODEL, **body}).json()
        assert list(loaded) == ["model", "created_at", key, "done", "done_reason"]
        assert loaded["done"] is True and loaded["done_reason"] == "load"
        unloaded = post(live, path, {"model": MODEL, **body, "keep_alive": 0}).json()
        assert unloaded["done_reason"] == "unload"  # the model stays loaded here: it is the server's only one


def test_go_json(live: LiveServer) -> None:
    """``<``, ``>`` and ``&`` escaped as Go's encoder does; the answer decodes to the same text."""
    text = "a <b> & c \u2028 é"
    r = post(live, "/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": False})
    assert '"content":"a \\u003cb\\u003e \\u0026 c \\u2028 é"' in r.content.decode()  # the echo engine repeats it
    assert r.json()["message"]["content"] == text


def test_options_reach_the_core(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, engine = server
    say = [{"role": "user", "content": "hi"}]
    post(live, "/api/chat", {"model": MODEL, "messages": say, "stream": False})
    s = engine.requests[-1].sampling
    # Ollama's defaults for gpt-oss where the request names none; its Modelfile's temperature
    assert (s.temperature, s.top_k, s.top_p, s.seed, s.max_tokens) == (1.0, 40, 0.9, None, None)
    assert engine.requests[-1].max_tokens == 1000  # num_predict unset: until the context fills, within the cap
    options = {"temperature": None, "top_k": 0, "seed": -1, "num_predict": -1, "mirostat": 2, "num_gpu": 1.5}
    post(live, "/api/chat", {"model": MODEL, "messages": say, "stream": False, "options": options})
    s = engine.requests[-1].sampling
    assert (s.temperature, s.top_k, s.seed) == (1.0, -1, None)  # null keeps the default; 0 and -1: off, random
    assert engine.requests[-1].max_tokens == 1000
    post(live, "/api/chat", {"model": MODEL, "messages": say, "stream": False, "options": {"num_predict": 5000}})
    assert engine.requests[-1].max_tokens == 1000  # clamped, as Ollama never refuses it
    post(live, "/api/chat", {"model": MODEL, "messages": say, "stream": False, "options": {"num_predict": 7.9}})
    assert engine.requests[-1].max_tokens == 7  # a fraction is cut off


def test_num_ctx_and_truncation(server: tuple[LiveServer, WatchedEngine]) -> None:
    """A prompt past ``num_ctx`` loses its oldest messages (system ones kept, the last always), as in Ollama;
    ``truncate: false`` makes it a 400. The output fits in what is left of the window."""
    live, engine = server
    old = [{"role": "user", "content": f"old message {i} " + "word " * 200} for i in range(6)]
    messages = [{"role": "system", "content": "Be kind."}, *old, {"role": "user", "content": "reason"}]
    body = {"model": MODEL, "messages": messages, "stream": False, "options": {"num_ctx": 700}}
    r = post(live, "/api/chat", body)
    assert r.status_code == 200 and r.json()["message"]["content"] == "Hello! How can I help?", r.text
    request = engine.requests[-1]
    prompt = get_encoding().decode(request.prompt_token_ids)
    assert "Be kind." in prompt and "old message 0" not in prompt and "old message 5" in prompt
    assert len(request.prompt_token_ids) + request.max_tokens <= 700
    r = post(live, "/api/chat", {**body, "truncate": False})
    assert (r.status_code, r.json()) == (400, {"error": "the input length exceeds the context length"})


def test_tool_call_arguments_that_are_no_object(live: LiveServer) -> None:
    """Ollama fails a call it cannot parse: 500 whole, the error line streamed."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "bad call"}]}
    r = post(live, "/api/chat", {**body, "stream": False})
    assert r.status_code == 500 and r.json()["error"].startswith("error parsing tool call: raw='[1,2]'"), r.text
    (last,) = lines(post(live, "/api/chat", body))
    assert last["error"].startswith("error parsing tool call")


def test_paths_beside_the_other_apis_under_api(live: LiveServer) -> None:
    base = live.base_url
    assert requests.get(base + "/").text == "Ollama is running"  # no key needed
    assert requests.head(base + "/").status_code == 200
    r = requests.get(base + "/api/nowhere", headers=AUTH)
    assert (r.status_code, r.json()) == (404, {"error": "404 page not found"})
    r = requests.get(base + "/api/chat", headers=AUTH)
    assert (r.status_code, r.json()) == (405, {"error": "405 method not allowed"})
    assert requests.head(base + "/api/tags", headers=AUTH).status_code == 200
    assert requests.head(base + "/api/blobs/sha256:00", headers=AUTH).status_code == 404
    # the longer prefixes keep their own envelopes
    assert "errors" in requests.post(base + "/api/v1/nowhere", headers=AUTH).json()  # Dataoorts
    assert requests.get(base + "/api/ai/nowhere", headers=AUTH).json()["status"] == "error"  # Oxen
    assert isinstance(requests.get(base + "/api/v1/collection/nowhere", headers=AUTH).json()["error"], dict)  # dat1


def test_an_error_mid_stream(tmp_path: Path) -> None:
    settings = scripted_settings(tmp_path)
    engine = FailingEngine(settings.engine.scripted, after=3, error=EngineUnavailableError("The engine died."))
    with threaded_server(settings, engine) as live:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "reason"}]}
        r = post(live, "/api/chat", body)
        assert r.status_code == 200 and lines(r)[-1] == {"error": "The engine died."}
        assert not any(p.get("done") for p in lines(r))
        client = ollama.Client(host=live.base_url, headers=AUTH)
        with pytest.raises(ollama.ResponseError, match=r"The engine died\."):
            list(client.chat(model=MODEL, messages=body["messages"], stream=True))
        r = post(live, "/api/chat", {**body, "stream": False})
        assert (r.status_code, r.json()) == (503, {"error": "The engine died."})


def test_a_client_leaving_mid_stream_aborts_the_request(tmp_path: Path) -> None:
    with threaded_server(scripted_settings(tmp_path, token_delay_s=0.02)) as live:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "long"}]}
        url = live.base_url + "/api/chat"
        with httpx.Client(timeout=30) as http, http.stream("POST", url, json=body, headers=AUTH) as r:
            for i, _ in enumerate(r.iter_lines()):
                if i == 3:
                    assert live.health()["engine_requests"] == 1
                    break
        deadline = time.monotonic() + 10
        while live.health()["engine_requests"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.health()["engine_requests"] == 0 and live.health()["active_requests"] == 0


# ---- pure pieces: names, durations, Go's clock ------------------------------------------------------------


def test_model_names() -> None:
    parsed = names.parse("gpt-oss:120b")
    assert parsed is not None and parsed.full == "registry.ollama.ai/library/gpt-oss:120b"
    assert parsed.shortest == "gpt-oss:120b"
    assert names.same("GPT-OSS:120B", "registry.ollama.ai/library/gpt-oss:120b")
    assert names.same("gpt-oss-120b", "gpt-oss-120b:latest") and not names.same("gpt-oss", "gpt-oss:120b")
    other = names.parse("localhost:5000/me/model:v1")
    assert other is not None and (other.host, other.namespace, other.tag) == ("localhost:5000", "me", "v1")
    assert other.shortest == "localhost:5000/me/model:v1"
    for bad in ("", "a b", "-x", "m" * 81, "a/b/c/d/e", "ns.x/model", "model:t/x"):
        assert names.parse(bad) is None, bad


def test_keep_alive_durations() -> None:
    for text, seconds in (("5m", 300), ("1h30m", 5400), ("1.5s", 1.5), ("-1s", -1), ("0", 0), ("250ms", 0.25)):
        assert keep_alive_seconds(text) == pytest.approx(seconds), text
    assert keep_alive_seconds(0) == 0 and keep_alive_seconds(None) is None
    for bad in ("5", "", "m", "1x", "1..5s"):
        with pytest.raises(InvalidRequestError, match="time: invalid duration"):
            keep_alive_seconds(bad)


def test_created_at_as_go_writes_it() -> None:
    assert ids.rfc3339(1_770_614_085_123_456_789) == "2026-02-09T05:14:45.123456789Z"
    assert ids.rfc3339(1_770_614_085_120_000_000) == "2026-02-09T05:14:45.12Z"
    assert ids.rfc3339(1_770_614_085_000_000_000) == "2026-02-09T05:14:45Z"
