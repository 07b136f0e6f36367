"""Ollama's own Python client (``ollama``) against the Ollama API on the scripted engine: chat and generate, streamed
and not, thinking, a tool loop (the exact harmony prompt of its second turn), ``format``, the model endpoints,
errors as ``ResponseError``, and the async client. Its typed responses must parse, and the durations must be real."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pydantic
import pytest

from tests.helpers import API_KEY, LiveServer, WatchedEngine, scripted_settings, threaded_server

MODEL = "gpt-oss:120b"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name"}},
            "required": ["city"],
        },
    },
}
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, WatchedEngine]]:
    settings = scripted_settings(tmp_path_factory.mktemp("ollama"))
    engine = WatchedEngine(settings.engine.scripted)
    with threaded_server(settings, engine) as live:
        yield live, engine


@pytest.fixture
def client(server: tuple[LiveServer, WatchedEngine]) -> ollama.Client:
    return ollama.Client(host=server[0].base_url, headers=AUTH)


def check_metrics(r: ollama.ChatResponse | ollama.GenerateResponse) -> None:
    """Durations measured (nanoseconds, none zero) and consistent; counts are the tokens."""
    assert r.done is True and r.done_reason == "stop"
    durations = (r.total_duration, r.load_duration, r.prompt_eval_duration, r.eval_duration)
    assert all(isinstance(d, int) and d > 0 for d in durations), durations
    assert r.total_duration >= r.load_duration + r.prompt_eval_duration + r.eval_duration  # type: ignore[operator]
    assert r.total_duration < 60 * 10**9  # type: ignore[operator]
    assert r.prompt_eval_count and r.prompt_eval_count > 20 and r.eval_count and r.eval_count > 0
    created = dt.datetime.fromisoformat(r.created_at or "")
    assert created.tzinfo is not None and abs(created - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


def test_chat(client: ollama.Client) -> None:
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "reason"}], think=True)
    assert isinstance(r, ollama.ChatResponse) and r.model == MODEL
    assert r.message.role == "assistant" and r.message.content == "Hello! How can I help?"
    assert r.message.thinking == "User says hi. Reply politely." and not r.message.tool_calls
    check_metrics(r)


def test_chat_streamed(client: ollama.Client) -> None:
    parts = list(client.chat(model=MODEL, messages=[{"role": "user", "content": "reason"}], stream=True))
    *deltas, last = parts
    assert all(isinstance(p, ollama.ChatResponse) for p in parts)
    assert "".join(p.message.thinking or "" for p in deltas) == "User says hi. Reply politely."
    assert "".join(p.message.content or "" for p in deltas) == "Hello! How can I help?"
    assert not any(p.done or p.total_duration or p.eval_count for p in deltas)
    assert last.message.content == "" and not last.message.thinking
    check_metrics(last)
    assert last.eval_count == 24  # every token the engine wrote, control tokens included


def test_generate(client: ollama.Client, server: tuple[LiveServer, WatchedEngine]) -> None:
    engine = server[1]
    r = client.generate(model=MODEL, prompt="reason", system="Be brief.")
    assert isinstance(r, ollama.GenerateResponse)
    assert r.response == "Hello! How can I help?" and r.thinking == "User says hi. Reply politely."
    check_metrics(r)
    assert "<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>" in engine.prompts[-1]
    parts = list(client.generate(model=MODEL, prompt="reason", stream=True))
    assert "".join(p.response or "" for p in parts) == r.response
    assert "".join(p.thinking or "" for p in parts) == r.thinking
    check_metrics(parts[-1])
    # the deprecated context: the conversation so far, read back as one (its final answer kept, reasoning not)
    assert r.context and parts[-1].context
    again = client.generate(model=MODEL, prompt="more please", context=r.context)
    assert again.response == "more please" and again.context  # the scripted engine echoes an unscripted prompt
    prompt = engine.prompts[-1]
    assert prompt.count("<|start|>system") == 1 and "Be brief." in prompt
    assert "<|start|>user<|message|>reason<|end|>" in prompt
    assert "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|end|>" in prompt
    assert "User says hi." not in prompt and prompt.endswith(
        "<|start|>user<|message|>more please<|end|><|start|>assistant"
    )


def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
      city: The city's name

    Returns:
      str: the weather
    """
    return f"{city}: sunny, 18C"


def test_a_tool_loop(client: ollama.Client, server: tuple[LiveServer, WatchedEngine]) -> None:
    """Call, the tool's result back as a ``tool`` message with ``tool_name``, the answer: the reasoning of the loop
    stays in the second turn's prompt and is dropped once a final answer followed."""
    engine = server[1]
    messages: list[Any] = [{"role": "user", "content": "forecast"}]
    first = client.chat(model=MODEL, messages=messages, tools=[get_weather])
    (call,) = first.message.tool_calls or []
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}
    assert first.message.thinking == "Need the weather tool." and first.done_reason == "stop"
    assert "namespace functions {" in engine.prompts[-1] and "type get_weather = (_: {" in engine.prompts[-1]
    result = {"role": "tool", "content": get_weather(**call.function.arguments), "tool_name": "get_weather"}
    messages += [first.message, result]
    second = client.chat(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    assert second.message.content == "It is 18°C and sunny in Paris." and not second.message.tool_calls
    assert engine.prompts[-1].endswith(
        "<|start|>user<|message|>forecast<|end|>"
        "<|start|>assistant<|channel|>analysis<|message|>Need the weather tool.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city":"Paris"}<|call|>'
        "<|start|>functions.get_weather<|channel|>commentary to=assistant<|message|>Paris: sunny, 18C<|end|>"
        "<|start|>assistant"
    ), engine.prompts[-1][-700:]
    messages += [second.message, {"role": "user", "content": "reason"}]
    client.chat(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    prompt = engine.prompts[-1]
    assert "Need the weather tool." not in prompt and "The tool says" not in prompt
    assert "<|channel|>final<|message|>It is 18°C and sunny in Paris.<|end|>" in prompt


def test_a_streamed_tool_call(client: ollama.Client) -> None:
    """As Ollama streams gpt-oss's calls: whole, in the last object."""
    weather = [{"role": "user", "content": "weather"}]
    parts = list(client.chat(model=MODEL, messages=weather, tools=[get_weather], stream=True))
    assert [bool(p.message.tool_calls) for p in parts] == [False] * (len(parts) - 1) + [True]
    (call,) = parts[-1].message.tool_calls or []
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"} and parts[-1].done


class City(pydantic.BaseModel):
    city: str
    temp_c: int


def test_format(client: ollama.Client, server: tuple[LiveServer, WatchedEngine]) -> None:
    engine = server[1]
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "city json"}], format=City.model_json_schema())
    assert City.model_validate_json(r.message.content or "") == City(city="Paris", temp_c=18)
    constraint = engine.requests[-1].constraint
    assert constraint is not None and '"temp_c"' in str(constraint["structural_tag"])
    r = client.generate(model=MODEL, prompt="city json", format="json")
    assert City.model_validate_json(r.response or "").city == "Paris"
    assert engine.requests[-1].constraint is not None and '"type":"object"' in str(engine.requests[-1].constraint)
    client.chat(model=MODEL, messages=[{"role": "user", "content": "reason"}])
    assert engine.requests[-1].constraint is None


def test_think_levels(client: ollama.Client, server: tuple[LiveServer, WatchedEngine]) -> None:
    """Levels set harmony's effort; true/false change nothing for gpt-oss (as in Ollama), the reasoning still comes."""
    engine = server[1]
    for think, effort in (("low", "low"), ("high", "high"), (False, "medium"), (True, "medium"), (None, "medium")):
        r = client.chat(model=MODEL, messages=[{"role": "user", "content": "reason"}], think=think)
        assert f"Reasoning: {effort}" in engine.prompts[-1] and r.message.thinking, think
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model=MODEL, messages=[{"role": "user", "content": "reason"}], think="max")
    assert err.value.status_code == 400 and err.value.error.startswith('invalid think value: "max"')


def test_model_endpoints(client: ollama.Client, server: tuple[LiveServer, WatchedEngine]) -> None:
    (listed,) = client.list().models
    assert listed.model == MODEL and listed.size and listed.digest and len(listed.digest) == 64
    assert listed.details and listed.details.family == "gptoss" and listed.details.parameter_size == "116.8B"
    assert isinstance(listed.modified_at, dt.datetime)
    shown = client.show(MODEL)
    assert isinstance(shown, ollama.ShowResponse) and shown.capabilities == ["completion", "tools", "thinking"]
    assert shown.modelinfo and shown.modelinfo["gptoss.context_length"] == 131072
    assert shown.parameters and "temperature" in shown.parameters and shown.modelfile
    (running,) = client.ps().models
    assert running.model == MODEL and running.context_length == server[1].info.max_model_len
    assert running.expires_at and running.expires_at.year > 2200  # loaded for good
    version = httpx.get(server[0].base_url + "/api/version", headers=AUTH).json()
    assert version == {"version": "0.14.0"}
    for name in ("gpt-oss:120B", "registry.ollama.ai/library/gpt-oss:120b", "gpt-oss-120b", "GPT-OSS-120B:latest"):
        assert client.show(name).capabilities, name
        assert client.chat(model=name, messages=[{"role": "user", "content": "reason"}]).model == name  # echoed


def test_errors_are_response_errors(client: ollama.Client, server: tuple[LiveServer, WatchedEngine]) -> None:
    cases = [
        (
            lambda: client.chat(model="gpt-oss", messages=[{"role": "user", "content": "hi"}]),
            404,
            "model 'gpt-oss' not found",
        ),
        (lambda: client.show("llama3.2"), 404, "model 'llama3.2' not found"),
        (lambda: client.generate(model="no-such", prompt="hi"), 404, "model 'no-such' not found"),
        (lambda: client.chat(model="a b", messages=[]), 400, "invalid model name"),
        (
            lambda: client.chat(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], options={"temperature": "hot"}
            ),
            400,
            'option "temperature" must be of type float32',
        ),
        (
            lambda: client.generate(model=MODEL, prompt="def f():", suffix="    return x"),
            400,
            "registry.ollama.ai/library/gpt-oss:120b does not support insert",
        ),
        (lambda: client.embed(model=MODEL, input="hi"), 501, "this model does not support embeddings"),
        (lambda: client.embeddings(model=MODEL, prompt="hi"), 500, "this model does not support embeddings"),
        (lambda: client.delete(MODEL), 403, "this server serves one fixed model"),
        (lambda: client.copy(MODEL, "mine"), 403, "this server serves one fixed model"),
        (lambda: client.copy("llama3.2", "mine"), 404, 'model "llama3.2" not found'),
        (lambda: client.pull("llama3.2"), 500, "pull model manifest: file does not exist"),
        (lambda: ollama.Client(host=server[0].base_url).list(), 401, "unauthorized"),
    ]
    for call, status, text in cases:
        with pytest.raises(ollama.ResponseError) as err:
            call()
        assert err.value.status_code == status and err.value.error.startswith(text), (status, err.value)


def test_pull_and_empty_requests(client: ollama.Client) -> None:
    assert client.pull(MODEL).status == "success"
    statuses = [p.status for p in client.pull(MODEL, stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success" and len(statuses) == 5
    with pytest.raises(ollama.ResponseError, match="file does not exist"):
        list(client.pull("llama3.2", stream=True))  # the error line mid-stream
    assert client.embed(model=MODEL, input=[]).embeddings == []  # an empty input only loads the model
    loaded = client.chat(model=MODEL, messages=[])
    assert loaded.done_reason == "load" and loaded.message.content == ""
    assert client.generate(model=MODEL, keep_alive=0).done_reason == "unload"


def test_the_async_client(server: tuple[LiveServer, WatchedEngine]) -> None:
    async def run() -> tuple[ollama.ChatResponse, list[ollama.GenerateResponse]]:
        client = ollama.AsyncClient(host=server[0].base_url, headers=AUTH)
        chat = await client.chat(model=MODEL, messages=[{"role": "user", "content": "reason"}])
        parts = [p async for p in await client.generate(model=MODEL, prompt="reason", stream=True)]
        return chat, parts

    chat, parts = asyncio.run(run())
    assert chat.message.content == "Hello! How can I help?"
    assert "".join(p.response or "" for p in parts) == "Hello! How can I help?"
    check_metrics(parts[-1])


def test_logprobs(client: ollama.Client) -> None:
    r = client.chat(model=MODEL, messages=[{"role": "user", "content": "reason"}], logprobs=True, top_logprobs=2)
    entries = r.logprobs or []
    assert len(entries) == r.eval_count  # every token the engine wrote (harmony's control tokens too)
    assert "".join(e.token for e in entries) == (
        "<|channel|>analysis<|message|>User says hi. Reply politely.<|end|><|start|>assistant<|channel|>final"
        "<|message|>Hello! How can I help?<|return|>"
    )
    # the scripted engine's sampler is deterministic: the token itself first (probability 1), then one other token
    for e in entries:
        first, second = e.top_logprobs or []
        assert e.logprob == first.logprob == 0.0 and first.token == e.token
        assert second.token != e.token and second.logprob == -10.0
    assert not client.chat(model=MODEL, messages=[{"role": "user", "content": "reason"}]).logprobs
