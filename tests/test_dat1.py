"""dat1 (llama-server behind dat1's gateway) against a live uvicorn server: ``requests`` on invoke-chat as dat1's
docs do, the OpenAI SDK on the open-ai route, exact bytes pinned by goldens, llama-server's lenient body reading
and error envelope, the build-era switches, and one run on the real vLLM engine."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from routes.dat1 import errors, ids
from routes.dat1.settings import Dat1Settings
from server.engine.scripted import ScriptedEngine
from server.settings import ScriptedSettings
from tests.cases.dat1 import INVOKE, MODEL, OPENAI_BASE, check_error
from tests.contract import sse_payloads
from tests.helpers import (
    API_KEY,
    FailingEngine,
    LiveServer,
    WatchedEngine,
    assert_golden,
    scripted_settings,
    threaded_server,
)

GOLDEN = Path(__file__).parent / "golden" / "dat1"
KEY = {"X-API-Key": API_KEY}
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
# the documented request (dat1 docs, wire spec 1.3), verbatim
DOC_REQUEST = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "temperature": 0.7,
    "stream": False,
    "max_tokens": 500,
}
TOP_KEYS = ["choices", "created", "model", "system_fingerprint", "object", "usage", "id", "timings"]
CHUNK_KEYS = ["choices", "created", "id", "model", "system_fingerprint", "object"]
TIMING_KEYS = [
    "prompt_n", "prompt_ms", "prompt_per_token_ms", "prompt_per_second",
    "predicted_n", "predicted_ms", "predicted_per_token_ms", "predicted_per_second",
]  # fmt: skip
ID = re.compile(r"^chatcmpl-[0-9A-Za-z]{32}$")
TOOL_ID = re.compile(r"^[0-9A-Za-z]{32}$")
MEASURED = re.compile(r'"((?:prompt|predicted)_(?:ms|per_token_ms|per_second))":[-0-9.e+]+')


def start(
    tmp: Path,
    engine: Callable[[ScriptedSettings], ScriptedEngine] = WatchedEngine,
    scripted: dict[str, Any] | None = None,
    **dat1_settings: Any,
) -> Any:
    settings = scripted_settings(tmp, **(scripted or {}))
    settings.providers.dat1 = Dat1Settings(**dat1_settings)
    return threaded_server(settings, engine(settings.engine.scripted))


def failing(settings: ScriptedSettings) -> ScriptedEngine:
    """An engine that dies after 12 steps."""
    return FailingEngine(settings, after=12, error=RuntimeError("engine died"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with start(tmp_path_factory.mktemp("dat1")) as live:
        yield live


def post(
    server: LiveServer, body: Any, *, headers: dict[str, str] | None = None, path: str = INVOKE
) -> requests.Response:
    return requests.post(server.base_url + path, json=body, headers=KEY if headers is None else headers, timeout=30)


def stream_events(server: LiveServer, body: dict[str, Any], path: str = INVOKE) -> tuple[str, list[dict[str, Any]]]:
    r = requests.post(server.base_url + path, json={**body, "stream": True}, headers=KEY, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/event-stream"
    raw = r.content.decode()
    return raw, sse_payloads(raw)[0]


def last_prompt(server: LiveServer) -> str:
    return server.app.state.ctx.engine.prompts[-1]  # type: ignore[no-any-return]


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count()
    monkeypatch.setattr(ids, "now", lambda: 1754303118)
    monkeypatch.setattr(ids, "new_id", lambda: "chatcmpl-a6oVnja9gLmx3o948hU46mWUD7sWjsPF")
    monkeypatch.setattr(ids, "new_tool_call_id", lambda: f"{next(counter):032d}")


def check_golden(name: str, data: bytes) -> None:
    """Exact bytes, except the measured durations in `timings` (token counts stay exact)."""
    assert_golden(GOLDEN / name, MEASURED.sub(r'"\1":<measured>', data.decode()))


def check_timings(timings: dict[str, Any], prompt_tokens: int, completion_tokens: int) -> None:
    assert list(timings) == TIMING_KEYS
    assert timings["prompt_n"] == prompt_tokens and timings["predicted_n"] == completion_tokens
    for side, n in (("prompt", prompt_tokens), ("predicted", completion_tokens)):
        ms = timings[f"{side}_ms"]
        assert isinstance(ms, float) and ms >= 0 and round(ms, 3) == ms  # whole microseconds
        if ms > 0:
            assert timings[f"{side}_per_token_ms"] == pytest.approx(ms / n)
            assert timings[f"{side}_per_second"] == pytest.approx(1e3 / ms * n)


# ---- invoke-chat with requests, as dat1's docs do -------------------------------------------------------


def test_documented_request(server: LiveServer) -> None:
    r = requests.post(
        server.base_url + INVOKE,
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        json=DOC_REQUEST,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    body = r.json()
    assert list(body) == TOP_KEYS
    assert body["model"] == "gpt-3.5-turbo" and body["system_fingerprint"] == "b5466-9ecf3e66"
    assert body["object"] == "chat.completion" and ID.match(body["id"])
    (choice,) = body["choices"]
    assert list(choice) == ["finish_reason", "index", "message"]  # no `logprobs` key unless asked
    assert choice["finish_reason"] == "stop" and choice["index"] == 0
    assert choice["message"] == {"role": "assistant", "content": "What is the capital of France?"}  # echo engine
    usage = body["usage"]
    assert list(usage) == ["completion_tokens", "prompt_tokens", "total_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    check_timings(body["timings"], usage["prompt_tokens"], usage["completion_tokens"])
    # compact separators and raw UTF-8, exactly what llama-server's dump(-1) writes
    assert r.content == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    # the system message became the developer instructions
    assert "You are a helpful assistant." in last_prompt(server)


def test_reasoning_content(server: LiveServer) -> None:
    message = post(server, {"messages": REASON}).json()["choices"][0]["message"]
    assert list(message) == ["role", "reasoning_content", "content"]
    assert message["reasoning_content"] == "User says hi. Reply politely."
    assert message["content"] == "Hello! How can I help?"


def test_stream_with_requests(server: LiveServer) -> None:
    """dat1's streaming snippet: iter_lines, keep `data: ` lines, stop at [DONE]."""
    r = requests.post(server.base_url + INVOKE, headers=KEY, json={"messages": REASON, "stream": True}, stream=True)
    chunks = []
    for line in r.iter_lines(decode_unicode=True):
        if line and line.startswith("data: "):
            data = line[len("data: ") :]
            if data == "[DONE]":
                break
            assert json.dumps(json.loads(data), separators=(",", ":"), ensure_ascii=False) == data
            chunks.append(json.loads(data))
    first, *middle, final = chunks
    assert list(first) == CHUNK_KEYS
    assert first["choices"] == [{"finish_reason": None, "index": 0, "delta": {"role": "assistant", "content": None}}]
    assert len({c["id"] for c in chunks}) == 1 and ID.match(first["id"])
    for c in middle:
        assert list(c) == CHUNK_KEYS
        (choice,) = c["choices"]
        assert list(choice) == ["finish_reason", "index", "delta"] and choice["finish_reason"] is None
        assert len(choice["delta"]) == 1  # one of reasoning_content / content / tool_calls per chunk
    reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in middle)
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in middle)
    assert reasoning == "User says hi. Reply politely." and content == "Hello! How can I help?"
    assert list(final) == [*CHUNK_KEYS, "usage", "timings"]
    assert final["choices"] == [{"finish_reason": "stop", "index": 0, "delta": {}}]
    full = post(server, {"messages": REASON}).json()
    assert final["usage"] == full["usage"]
    check_timings(final["timings"], full["usage"]["prompt_tokens"], full["usage"]["completion_tokens"])


def test_goldens(server: LiveServer, pinned: None) -> None:
    for name, messages, extra in (("reason", REASON, {}), ("weather", WEATHER, {"tools": TOOLS})):
        r = post(server, {"messages": messages, **extra})
        check_golden(f"{name}.json", r.content)
        r = post(server, {"messages": messages, "stream": True, **extra})
        check_golden(f"{name}.sse", r.content)


def test_tool_calls(server: LiveServer) -> None:
    body = post(server, {"messages": WEATHER, "tools": TOOLS}).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert list(message) == ["role", "reasoning_content", "content", "tool_calls"] and message["content"] is None
    (call,) = message["tool_calls"]
    assert list(call) == ["type", "function", "id"] and TOOL_ID.match(call["id"])
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}

    _, chunks = stream_events(server, {"messages": WEATHER, "tools": TOOLS})
    parts = [p for c in chunks for p in c["choices"][0]["delta"].get("tool_calls", [])]
    head, *rest = parts
    assert list(head) == ["index", "id", "type", "function"] and TOOL_ID.match(head["id"])
    assert head["function"]["name"] == "get_weather"
    assert all(list(p) == ["index", "function"] and list(p["function"]) == ["arguments"] for p in rest)
    assert json.loads("".join(p["function"]["arguments"] for p in parts)) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_max_tokens(server: LiveServer) -> None:
    body = post(server, {"messages": [{"role": "user", "content": "long"}], "max_tokens": 5}).json()
    assert body["choices"][0]["finish_reason"] == "length" and body["usage"]["completion_tokens"] == 5
    # llama-server: 0 and negatives other than -1 stop after one token; -1 is unlimited
    for value, expected in ((0, 1), (-7, 1), (-1, None)):
        body = post(server, {"messages": [{"role": "user", "content": "long"}], "max_tokens": value}).json()
        assert expected is None or body["usage"]["completion_tokens"] == expected
    assert body["choices"][0]["finish_reason"] == "stop"
    # n_predict wins over max_tokens; a limit past the context is not an error (it ends at the context)
    body = post(server, {"messages": [{"role": "user", "content": "long"}], "max_tokens": 3, "n_predict": 4}).json()
    assert body["usage"]["completion_tokens"] == 4
    r = post(server, {"messages": REASON, "max_tokens": 10**7})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Hello! How can I help?"


def test_logprobs(server: LiveServer) -> None:
    body = post(server, {"messages": REASON, "logprobs": True, "top_logprobs": 2, "max_tokens": 4}).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == 4
    assert list(content[0]) == ["id", "token", "bytes", "logprob", "top_logprobs"]
    assert content[0]["token"] == "<|channel|>" and content[0]["bytes"] == list(b"<|channel|>")
    assert list(content[0]["top_logprobs"][0]) == ["id", "token", "bytes", "logprob"]
    # legacy spelling: an integer `logprobs` is n_probs
    assert "logprobs" in post(server, {"messages": REASON, "logprobs": 1, "max_tokens": 2}).json()["choices"][0]
    assert "logprobs" not in post(server, {"messages": REASON, "logprobs": False}).json()["choices"][0]


def test_timings_per_token(server: LiveServer) -> None:
    _, chunks = stream_events(server, {"messages": REASON, "timings_per_token": True})
    assert "timings" not in chunks[0]
    assert all(list(c["timings"]) == TIMING_KEYS for c in chunks[1:])
    predicted = [c["timings"]["predicted_n"] for c in chunks[1:]]
    assert predicted == sorted(predicted) and predicted[-1] == chunks[-1]["usage"]["completion_tokens"]


def test_reasoning_format_none(server: LiveServer) -> None:
    """llama-server leaves the analysis channel in `content`, harmony markers included, when asked."""
    raw = "<|channel|>analysis<|message|>User says hi. Reply politely.<|end|>Hello! How can I help?"
    message = post(server, {"messages": REASON, "reasoning_format": "none"}).json()["choices"][0]["message"]
    assert message == {"role": "assistant", "content": raw}
    _, chunks = stream_events(server, {"messages": REASON, "reasoning_format": "none"})
    assert all("reasoning_content" not in c["choices"][0]["delta"] for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == raw


# ---- llama-server's reading of the body ---------------------------------------------------------------


def test_reasoning_effort_spelling(tmp_path: Path, server: LiveServer) -> None:
    post(server, {"messages": REASON, "chat_template_kwargs": {"reasoning_effort": "high"}})
    assert "Reasoning: high" in last_prompt(server)
    # the documented build ignores a top-level reasoning_effort...
    post(server, {"messages": REASON, "reasoning_effort": "low"})
    assert "Reasoning: medium" in last_prompt(server)
    # ...newer builds read it (a switch)
    with start(tmp_path, top_level_reasoning_effort=True) as live:
        post(live, {"messages": REASON, "reasoning_effort": "low"})
        assert "Reasoning: low" in last_prompt(live)
        post(
            live, {"messages": REASON, "reasoning_effort": "low", "chat_template_kwargs": {"reasoning_effort": "high"}}
        )
        assert "Reasoning: high" in last_prompt(live)


def test_wrong_types_fall_back_to_defaults(server: LiveServer) -> None:
    body = {
        "messages": REASON,
        "stream": "yes",  # not a boolean: false
        "temperature": "hot",
        "max_tokens": "many",
        "top_k": [1],
        "top_p": {"a": 1},
        "seed": "abc",
        "n": "2",  # not a number: the default 1
        "logprobs": "yes",
        "tool_choice": {"type": "function", "function": {"name": "x"}},  # not a string: "auto"
        "stop": 5,
        "chat_template_kwargs": "high",
        "model": 7,
    }
    r = post(server, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion" and out["model"] == "gpt-3.5-turbo"
    assert out["choices"][0]["message"]["content"] == "Hello! How can I help?"
    assert "logprobs" not in out["choices"][0]


def test_unknown_keys_ignored(server: LiveServer) -> None:
    extra = {"mirostat": 2, "cache_prompt": False, "some_future_field": {"a": 1}, "chat_template": "{{ evil }}"}
    r = post(server, {"messages": REASON, **extra})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Hello! How can I help?"


def test_request_model_is_echoed(server: LiveServer) -> None:
    """llama-server (Aug 2025) echoes a string `model`; dat1's documented body sends none."""
    assert post(server, {"messages": REASON, "model": "my-model"}).json()["model"] == "my-model"


@pytest.mark.parametrize(
    ("n", "ok"),
    [(1, True), (1.5, True), (True, True), (None, True), (2, False), (0, False), (-1, False), (10**9, False)],
)
def test_n(server: LiveServer, n: Any, ok: bool) -> None:
    r = post(server, {"messages": REASON, "n": n})
    if ok:
        assert r.status_code == 200, r.text
    else:
        check_error(r, 400)
        assert r.json()["error"] == {
            "code": 400,
            "message": "Only one completion choice is allowed",
            "type": "invalid_request_error",
        }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "x"}, "'messages' is required"),
        ({"messages": "hi"}, "Expected 'messages' to be an array"),
        ({"messages": [{"role": "user"}]}, "All non-assistant messages must contain 'content'"),
        ({"messages": [{"role": "assistant"}]}, "Assistant message must contain either 'content' or 'tool_calls'!"),
        ({"messages": [{"role": "user", "content": 5}]}, "Expected 'content' to be a string or an array"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y"}}]}]},
            "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "file"}]}]}, "unsupported content[].type"),
        ({"messages": [{"content": "x"}]}, 'Failed to parse messages: Missing \'role\' in message: {"content":"x"}'),
        ({"messages": [{"role": "function", "content": "x"}]}, "Failed to parse messages: Unsupported role 'function'"),
        ({"messages": REASON, "n": 3}, "Only one completion choice is allowed"),
        ({"messages": REASON, "top_logprobs": 3}, "top_logprobs requires logprobs to be set to true"),
        ({"messages": REASON, "tool_choice": "sometimes"}, "Invalid tool_choice: sometimes"),
        (
            {"messages": REASON, "response_format": {"type": "yaml"}},
            'response_format type must be one of "text" or "json_object", but got: yaml',
        ),
        (
            {"messages": [*REASON, {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]},
            "Cannot have 2 or more assistant messages at the end of the list.",
        ),
        ({"messages": REASON, "reasoning_format": "fancy"}, "Unknown reasoning format: fancy"),
        (
            {"messages": REASON, "reasoning_format": 5},
            "[json.exception.type_error.302] type must be string, but is number",
        ),
        ({"messages": REASON, "stop": ["ok", 5]}, "[json.exception.type_error.302] type must be string, but is number"),
        ({"messages": REASON, "repeat_last_n": -2}, "Error: repeat_last_n must be >= -1"),
    ],
)
def test_llama_server_errors(server: LiveServer, body: dict[str, Any], message: str) -> None:
    r = post(server, body)
    check_error(r, 400)
    assert r.json()["error"] == {"code": 400, "message": message, "type": "invalid_request_error"}


def test_tool_errors(server: LiveServer) -> None:
    for tools in ([{"function": {"name": "f"}}], [{"type": "function", "function": {"name": "bad name<|end|>"}}]):
        r = post(server, {"messages": REASON, "tools": tools})
        check_error(r, 400)
        assert r.json()["error"]["message"].startswith("Failed to parse tools: ")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1,2]", b'"text"'])
def test_bad_json(server: LiveServer, raw: bytes) -> None:
    r = requests.post(server.base_url + INVOKE, data=raw, headers={**KEY, "Content-Type": "application/json"})
    check_error(r, 400)
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_parse_errors_as_server_error(tmp_path: Path) -> None:
    """The Aug-2025 build lets body-parsing errors reach its exception handler: 500 server_error."""
    with start(tmp_path, parse_errors_as_server_error=True) as live:
        for body in ({"messages": REASON, "n": 2}, {"model": "x"}):
            r = post(live, body)
            check_error(r, 500)
            assert r.json()["error"]["type"] == "server_error"
        check_error(post(live, {"messages": REASON, "reasoning_format": "fancy"}), 400)  # parameters stay 400


def test_hostile_numbers_are_served(server: LiveServer) -> None:
    for extra in (
        {"temperature": 1e308, "top_p": 0, "top_k": -5, "min_p": 7, "seed": -1},
        {"temperature": -3, "top_p": 99, "top_k": 2**63, "presence_penalty": -1e9, "frequency_penalty": 1e9},
        {"repeat_penalty": 0, "max_tokens": 2**64, "n_probs": 10**6, "logit_bias": {"abc": 1, "5": False}},
        {"logit_bias": [[5, -1e300], ["hello", 3], [True, 1], "junk"], "seed": 2**40},
    ):
        r = post(server, {"messages": REASON, **extra})
        assert r.status_code == 200, (extra, r.text)


def test_context_too_long(tmp_path: Path, server: LiveServer) -> None:
    big = [{"role": "user", "content": "word " * 140_000}]
    r = post(server, {"messages": big})
    check_error(r, 400)
    assert r.json()["error"] == {"code": 400, "message": errors.CONTEXT_ERROR_A, "type": "invalid_request_error"}
    with start(tmp_path, stream_era="C") as live:
        error = post(live, {"messages": big}).json()["error"]
    assert list(error) == ["code", "message", "type", "n_prompt_tokens", "n_ctx"]
    assert error["type"] == "exceed_context_size_error" and error["n_ctx"] == 131072
    assert error["message"] == (
        f"request ({error['n_prompt_tokens']} tokens) exceeds the available context size (131072 tokens), "
        "try increasing it"
    )


# ---- auth -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (INVOKE, {}),
        (INVOKE, {"X-API-Key": "wrong"}),
        (INVOKE, {"X-API-Key": API_KEY[:-1]}),
        (INVOKE, {"X-API-Key": API_KEY.upper()}),
        (INVOKE, {"Authorization": f"Bearer {API_KEY}"}),  # right key, wrong header
        (OPENAI_BASE + "/chat/completions", {}),
        (OPENAI_BASE + "/chat/completions", {"X-API-Key": API_KEY}),
        (OPENAI_BASE + "/chat/completions", {"Authorization": f"Bearer {API_KEY}x"}),
    ],
)
def test_auth_failures(server: LiveServer, path: str, headers: dict[str, str]) -> None:
    r = post(server, {"model": MODEL, "messages": REASON}, headers=headers, path=path)
    check_error(r, 401)
    assert r.json() == {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}


def test_second_key(server: LiveServer) -> None:
    assert post(server, {"messages": REASON}, headers={"X-API-Key": "second-key-xyz"}).status_code == 200


# ---- the open-ai route with the OpenAI SDK ----------------------------------------------------------------


@pytest.fixture
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + OPENAI_BASE, api_key=API_KEY, max_retries=0)


def test_sdk_non_streaming(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=REASON, temperature=0.7, max_tokens=500)
    assert ID.match(r.id) and r.model == MODEL and r.system_fingerprint == "b5466-9ecf3e66"
    message = r.choices[0].message
    assert message.content == "Hello! How can I help?"
    assert message.model_extra["reasoning_content"] == "User says hi. Reply politely."
    assert r.usage is not None and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    check_timings(r.model_extra["timings"], r.usage.prompt_tokens, r.usage.completion_tokens)


def test_sdk_streaming(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=REASON, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content is None
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks)
    assert text == "Hello! How can I help?" and reasoning == "User says hi. Reply politely."
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop" and last.usage is not None
    assert last.model_extra["timings"]["predicted_n"] == last.usage.completion_tokens


def test_sdk_tool_calls(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS)  # type: ignore[arg-type]
    (call,) = r.choices[0].message.tool_calls or []
    assert r.choices[0].finish_reason == "tool_calls" and TOOL_ID.match(call.id)
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    args, names = "", []
    for chunk in client.chat.completions.create(model=MODEL, messages=WEATHER, tools=TOOLS, stream=True):  # type: ignore[arg-type]
        for tc in chunk.choices[0].delta.tool_calls or []:
            names += [tc.function.name] if tc.function and tc.function.name else []
            args += tc.function.arguments or "" if tc.function else ""
    assert names == ["get_weather"] and json.loads(args) == {"city": "Paris"}


def test_sdk_errors(client: openai.OpenAI, server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=REASON, n=2)
    bad = openai.OpenAI(base_url=server.base_url + OPENAI_BASE, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=MODEL, messages=REASON)


# ---- build-era switches -----------------------------------------------------------------------------------


def test_era_b_usage_chunk_always(tmp_path: Path) -> None:
    with start(tmp_path, stream_era="B") as live:
        _, chunks = stream_events(live, {"messages": REASON})
        body = post(live, {"messages": REASON}).json()
    *_, finish, usage = chunks
    assert list(finish) == CHUNK_KEYS and finish["choices"][0]["finish_reason"] == "stop"
    assert list(usage) == [*CHUNK_KEYS, "usage", "timings"] and usage["choices"] == []
    assert list(usage["timings"]) == ["cache_n", *TIMING_KEYS] and usage["timings"]["cache_n"] == 0
    assert list(body["usage"]) == ["completion_tokens", "prompt_tokens", "total_tokens"]


def test_era_c(tmp_path: Path) -> None:
    with start(tmp_path, stream_era="C") as live:
        _, without = stream_events(live, {"messages": REASON})
        _, with_usage = stream_events(live, {"messages": REASON, "stream_options": {"include_usage": True}})
        body = post(live, {"messages": REASON}).json()
        limited = post(live, {"messages": [{"role": "user", "content": "long"}], "max_completion_tokens": 3}).json()
    assert list(without[-1]) == [*CHUNK_KEYS, "timings"] and "usage" not in without[-1]
    assert without[-1]["choices"][0]["finish_reason"] == "stop"
    assert with_usage[-1]["choices"] == [] and list(with_usage[-1]) == [*CHUNK_KEYS, "usage", "timings"]
    assert "timings" not in with_usage[-2]
    assert with_usage[-1]["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert list(body["usage"])[-1] == "prompt_tokens_details" and next(iter(body["timings"])) == "cache_n"
    assert limited["usage"]["completion_tokens"] == 3


def test_sse_event_lines_and_identity(tmp_path: Path) -> None:
    with start(tmp_path, sse_event_lines=True, model_name="gpt-oss-120b", system_fingerprint="b6500-deadbeef") as live:
        raw, chunks = stream_events(live, {"messages": REASON})
        body = post(live, {"messages": REASON, "model": "other"}).json()
    blocks = [b for b in raw.split("\n\n") if b]
    assert all(b.startswith("event: message\ndata: ") for b in blocks) and blocks[-1] == "event: message\ndata: [DONE]"
    assert chunks[0]["model"] == "gpt-oss-120b" and chunks[0]["system_fingerprint"] == "b6500-deadbeef"
    assert body["model"] == "other"  # echo_request_model


def test_open_ai_route_serves_any_model(client: openai.OpenAI) -> None:
    """llama-server ignores `model` (the Aug-2025 build echoes it): a llama.cpp example's name is served."""
    r = client.chat.completions.create(model="gpt-4o", messages=REASON)
    assert r.model == "gpt-4o" and r.choices[0].message.content == "Hello! How can I help?"


def test_open_ai_route_model_list(tmp_path: Path) -> None:
    with start(tmp_path, openai_models=[MODEL]) as live:
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        path = OPENAI_BASE + "/chat/completions"
        missing = post(live, {"model": "gpt-4o", "messages": REASON}, path=path, headers=bearer)
        assert missing.status_code == 404
        assert missing.json() == {
            "error": {"code": 404, "message": "The model `gpt-4o` does not exist.", "type": "not_found_error"}
        }
        assert post(live, {"model": MODEL, "messages": REASON}, path=path, headers=bearer).status_code == 200


def test_open_ai_route_switches(tmp_path: Path) -> None:
    with start(tmp_path, openai_route_timings=False, echo_request_model=False) as live:
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        body = post(live, {"model": MODEL, "messages": REASON}, path=OPENAI_BASE + "/chat/completions", headers=bearer)
        body = body.json()
        assert "timings" not in body and body["model"] == "gpt-3.5-turbo"
        assert "timings" in post(live, {"messages": REASON}).json()
    with start(tmp_path, openai_route=False) as live:
        r = post(live, {"model": MODEL, "messages": REASON}, path=OPENAI_BASE + "/chat/completions")
        assert r.status_code == 404


# ---- errors after the stream started ----------------------------------------------------------------------


@pytest.mark.parametrize("era", ["A", "C"])
def test_error_during_stream(tmp_path: Path, era: str) -> None:
    with start(tmp_path, failing, stream_era=era) as live:
        raw, payloads = stream_events(live, {"messages": REASON})
        check_error(post(live, {"messages": REASON}), 500)
        again = requests.post(
            live.base_url + INVOKE, json={"messages": [{"role": "user", "content": "ok"}]}, headers=KEY
        )
    blocks = [b for b in raw.split("\n\n") if b]
    if era == "A":  # llama-server's `error:` event (no `data:` prefix), then [DONE]
        assert blocks[-1] == "data: [DONE]" and blocks[-2].startswith("error: {")
        error = json.loads(blocks[-2][len("error: ") :])
    else:  # a `data:` event holding the envelope, and no [DONE]
        assert "[DONE]" not in raw
        error = payloads[-1]["error"]
    assert list(error) == ["code", "message", "type"] and error["code"] == 500 and error["type"] == "server_error"
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert again.status_code == 200


def test_client_disconnect_aborts_the_engine_request(tmp_path: Path) -> None:
    with start(tmp_path, scripted={"token_delay_s": 0.02}) as live:
        engine = live.app.state.ctx.engine
        body = {"messages": [{"role": "user", "content": "long"}], "stream": True}
        with requests.post(live.base_url + INVOKE, json=body, headers=KEY, stream=True, timeout=30) as r:
            lines = r.iter_lines()
            seen = [next(lines) for _ in range(10)]
            assert any(line.startswith(b"data: {") for line in seen) and engine.num_running() == 1
        deadline = time.monotonic() + 5
        while engine.num_running() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert engine.num_running() == 0 and live.app.state.ctx.service.active_requests == 0
        assert post(live, {"messages": REASON}).status_code == 200


# ---- the real engine --------------------------------------------------------------------------------------


@pytest.mark.engine
def test_real_engine(vllm_server: LiveServer) -> None:
    r = post(vllm_server, {**DOC_REQUEST, "max_tokens": 16})
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == TOP_KEYS and body["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")
    usage = body["usage"]
    assert 0 < usage["completion_tokens"] <= 16
    check_timings(body["timings"], usage["prompt_tokens"], usage["completion_tokens"])
    assert body["timings"]["predicted_ms"] > 0

    # llama-server's defaults and hostile numbers are clamped into what vLLM accepts
    hostile = {"temperature": 50, "top_p": 0, "top_k": -3, "min_p": 3, "repeat_penalty": 0, "presence_penalty": 9}
    raw, chunks = stream_events(vllm_server, {"messages": DOC_REQUEST["messages"], "max_tokens": 12, **hostile})
    assert raw.endswith("data: [DONE]\n\n")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    final = chunks[-1]
    assert 0 < final["usage"]["completion_tokens"] <= 12
    check_timings(final["timings"], final["usage"]["prompt_tokens"], final["usage"]["completion_tokens"])

    sdk = openai.OpenAI(base_url=vllm_server.base_url + OPENAI_BASE, api_key=API_KEY, max_retries=0, timeout=120)
    effort = {"chat_template_kwargs": {"reasoning_effort": "low"}}
    out = sdk.chat.completions.create(model=MODEL, messages=DOC_REQUEST["messages"], max_tokens=8, extra_body=effort)
    assert out.model == MODEL and out.usage is not None and 0 < out.usage.completion_tokens <= 8
