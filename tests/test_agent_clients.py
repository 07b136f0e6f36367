"""Real agent clients against the Responses API on the scripted engine: OpenAI's Agents SDK runs a function tool
in a loop (plainly and streamed), and the Codex CLI (installed from npm, pinned) answers and runs its shell tool."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.helpers import API_KEY, LiveServer, WatchedEngine, scripted_settings, threaded_server
from tests.npm_clients import npm_binary

CODEX = ("@openai/codex", "0.169.0")
CODEX_TIMEOUT_S = 120
CODEX_CALL = (
    '<|channel|>commentary to=functions.exec_command <|constrain|>json<|message|>{"cmd":"cat note.txt"}<|call|>'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, WatchedEngine]]:
    settings = scripted_settings(tmp_path_factory.mktemp("agents"))
    engine = WatchedEngine(settings.engine.scripted)
    with threaded_server(settings, engine) as live:
        yield live, engine


# ---- OpenAI Agents SDK ------------------------------------------------------------------------------------

SDK_QUESTION = "agents-sdk: weather in Oslo?"
SDK_ANSWER = "In Oslo it is 7°C and raining."
SDK_TOOL_RESULT = (
    "<|start|>functions.lookup_weather<|channel|>commentary to=assistant<|message|>Oslo: 7C and raining<|end|>"
)


def forecaster(calls: list[str], client: AsyncOpenAI) -> Agent:
    """An agent with one function tool that records each city it is called with."""

    @function_tool
    def lookup_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return f"{city}: 7C and raining"

    model = OpenAIResponsesModel(model="gpt-oss-120b", openai_client=client)
    return Agent(name="forecaster", instructions="Answer from the tool.", tools=[lookup_weather], model=model)


def sdk_client(live: LiveServer) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=live.base_url + "/v1", api_key=API_KEY, max_retries=0)


def test_the_agents_sdk_runs_a_tool_loop(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, engine = server
    set_tracing_disabled(True)
    calls: list[str] = []

    async def run() -> tuple[str, list[str]]:
        async with sdk_client(live) as client:
            result = await Runner.run(forecaster(calls, client), SDK_QUESTION)
            return result.final_output, [item.type for item in result.new_items]

    before = len(engine.prompts)
    final, items = asyncio.run(run())
    assert final == SDK_ANSWER
    assert calls == ["Oslo"]  # the SDK ran the tool with the arguments the model wrote
    assert items == ["reasoning_item", "tool_call_item", "tool_call_output_item", "reasoning_item",
                     "message_output_item"]  # fmt: skip
    first, second = engine.prompts[before:]
    assert "Answer from the tool." in first and "type lookup_weather = (_: {" in first
    # the second turn holds the call, its real result and (inside the tool loop) the reasoning before it
    assert SDK_TOOL_RESULT in second and "<|channel|>analysis<|message|>Look it up.<|end|>" in second


def test_the_agents_sdk_streams_a_tool_loop(server: tuple[LiveServer, WatchedEngine]) -> None:
    live, engine = server
    set_tracing_disabled(True)
    calls: list[str] = []

    async def run() -> tuple[str, list[str], str]:
        async with sdk_client(live) as client:
            result = Runner.run_streamed(forecaster(calls, client), SDK_QUESTION)
            names, text = [], []
            async for event in result.stream_events():
                if event.type == "run_item_stream_event":
                    names.append(event.name)
                elif event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                    text.append(event.data.delta)
            return result.final_output, names, "".join(text)

    final, names, streamed = asyncio.run(run())
    assert final == SDK_ANSWER and streamed == SDK_ANSWER
    assert calls == ["Oslo"]
    assert [n for n in names if n != "reasoning_item_created"] == ["tool_called", "tool_output",
                                                                    "message_output_created"]  # fmt: skip
    assert SDK_TOOL_RESULT in engine.prompts[-1]


# ---- Codex CLI ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def codex() -> Path:
    return npm_binary(*CODEX, "codex")


def run_codex(codex: Path, live: LiveServer, prompt: str, work: Path) -> subprocess.CompletedProcess[str]:
    """``codex exec PROMPT`` in ``work`` against the server as a custom Responses provider, in its default
    read-only sandbox (where the bundled bubblewrap cannot start, ``-s danger-full-access`` is Codex's way to run
    commands unsandboxed). Its config and sessions live in a folder of their own."""
    home = work.parent / f"{work.name}-home"
    home.mkdir()
    port = live.base_url.rsplit(":", 1)[1]
    provider = (
        f'{{name="local",base_url="http://127.0.0.1:{port}/v1",wire_api="responses",env_key="LOCAL_KEY",'
        # an error from the server ends the run at once instead of after Codex's reconnection backoff
        "request_max_retries=0,stream_max_retries=0}"
    )
    argv = [str(codex), "exec", "--skip-git-repo-check", "-c", "model_provider=local",
            "-c", f"model_providers.local={provider}", "-c", "analytics.enabled=false",
            "-c", "check_for_update_on_startup=false", "-m", "gpt-oss-120b", prompt]  # fmt: skip
    # nothing else of this environment (OpenAI keys, proxies, Codex settings) reaches it
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOCAL_KEY": API_KEY, "CODEX_HOME": str(home),
           "HOME": str(home)}  # fmt: skip
    try:
        return subprocess.run(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=CODEX_TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"codex exec ran past {CODEX_TIMEOUT_S}s:\n{err[-4000:]}")


def test_codex_exec_answers(codex: Path, server: tuple[LiveServer, WatchedEngine], tmp_path: Path) -> None:
    live, engine = server
    work = tmp_path / "work"
    work.mkdir()
    before = len(engine.prompts)
    done = run_codex(codex, live, "codex: say hello", work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Hello from gpt-oss.", done.stdout + done.stderr
    (prompt,) = engine.prompts[before:]
    # Codex's own instructions and its shell tool reached the model
    assert "You are a coding agent running in the Codex CLI" in prompt and "type exec_command = (_: {" in prompt


def test_codex_runs_its_shell_tool_and_answers_from_the_output(
    codex: Path, server: tuple[LiveServer, WatchedEngine], tmp_path: Path
) -> None:
    live, engine = server
    work = tmp_path / "work"
    work.mkdir()
    note = f"codex-note-{secrets.token_hex(8)}"  # known only to the file: the server can see it only from Codex
    (work / "note.txt").write_text(note + "\n")
    before = len(engine.prompts)
    done = run_codex(codex, live, "codex: what does note.txt say?", work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "note.txt holds the note.", done.stdout + done.stderr
    call_turn, answer_turn = engine.prompts[before:]
    assert note not in call_turn
    # the second request carries the call and the command's real output, and the reasoning before the call: Codex
    # (store: false) returns that item with its encrypted_content, which the server opens into the prompt again
    assert CODEX_CALL in answer_turn
    tool_result = answer_turn.split("<|start|>functions.exec_command<|channel|>commentary to=assistant<|message|>")[-1]
    assert f"\n{note}\n" in tool_result.split("<|end|>")[0], tool_result
    assert "<|channel|>analysis<|message|>Read the file with the shell.<|end|>" in answer_turn
