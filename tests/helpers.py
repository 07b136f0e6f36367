"""Test plumbing: real uvicorn servers on loopback ports (in a thread, or as a subprocess)."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import yaml
from fastapi import FastAPI

from routes import WIRE_APIS
from routes.provider import Provider
from server.app import create_app
from server.engine.base import Engine, EngineStep, GenerationRequest
from server.engine.scripted import ScriptedEngine
from server.harmony.encoding import get_encoding
from server.http.server import build_server
from server.settings import ScriptedSettings, Settings

REPO = Path(__file__).resolve().parent.parent
# The real vLLM engine on the tiny checkpoint, with the CPU settings that work on these machines (see README).
TINY_VLLM_ENGINE: dict[str, Any] = {
    "kind": "vllm",
    "vllm": {"max_model_len": 2048, "gpu_memory_utilization": 0.2, "cpu_kvcache_space_gib": 1, "enforce_eager": True},
}
API_KEY = "sk-test-0123456789abcdef"
PINNED_DATE = "2026-01-15"

# Harmony transcripts the scripted test server replays (matched on the last user message).
SCRIPT_RULES: list[dict[str, str]] = [
    # a tool loop: the turn after the tool's result (``tool_output``) comes first, then the call itself
    {
        "match": "^forecast$",
        "tool_output": "sunny",
        "text": "<|channel|>analysis<|message|>The tool says 18C and sunny.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>It is 18°C and sunny in Paris.<|return|>",
    },
    {
        "match": "^forecast$",
        "text": "<|channel|>analysis<|message|>Need the weather tool.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city":"Paris"}<|call|>',
    },
    {
        "match": "^preamble forecast$",
        "tool_output": "sunny",
        "text": "<|channel|>final<|message|>Sunny it is.<|return|>",
    },
    {
        # reasoning, a commentary preamble, then the call (as gpt-oss writes them)
        "match": "^preamble forecast$",
        "text": "<|channel|>analysis<|message|>Check the tool.<|end|>"
        "<|start|>assistant<|channel|>commentary<|message|>Let me check the weather.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city":"Paris"}<|call|>',
    },
    {
        "match": "^city json$",
        "text": '<|channel|>final<|message|>{"city":"Paris","temp_c":18}<|return|>',
    },
    {
        "match": "^namespaced$",
        "text": '<|channel|>commentary to=agents.spawn <|constrain|>json<|message|>{"task":"triage"}<|call|>',
    },
    {
        "match": "^reason$",
        "text": "<|channel|>analysis<|message|>User says hi. Reply politely.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>",
    },
    {
        "match": "^weather$",
        "text": "<|channel|>analysis<|message|>Need the weather tool.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city":"Paris"}<|call|>',
    },
    {
        "match": "^two tools$",
        "text": '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>',
    },
    {
        "match": "^garbage$",
        "text": "random header words without structure",
    },
    {
        "match": "^long$",
        "text": "<|channel|>final<|message|>" + " ".join(f"w{i}" for i in range(400)) + "<|return|>",
    },
    {
        "match": "^parallel tools$",
        "text": "<|channel|>commentary to=functions.get_weather <|constrain|>json"
        '<|message|>{"city":"Paris"}<|end|>'
        "<|start|>assistant<|channel|>commentary to=functions.get_time <|constrain|>json"
        '<|message|>{"tz":"CET"}<|call|>',
    },
    {
        # the turn after a tool result: the history holds the get_weather call and its answer
        "match": "^weather report$",
        "text": "<|channel|>analysis<|message|>The tool says 18C and sunny.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>It is 18°C and sunny in Paris.<|return|>",
    },
    # tests/test_agent_clients.py: the Agents SDK's tool loop (the answer after the tool's result, then the call)
    {
        "match": r"^agents-sdk: weather in Oslo\?$",
        "tool_output": "^Oslo: 7C and raining$",
        "text": "<|channel|>analysis<|message|>The tool says 7C and rain.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>In Oslo it is 7°C and raining.<|return|>",
    },
    {
        "match": r"^agents-sdk: weather in Oslo\?$",
        "text": "<|channel|>analysis<|message|>Look it up.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.lookup_weather <|constrain|>json"
        '<|message|>{"city":"Oslo"}<|call|>',
    },
    # the Codex CLI: a plain answer; a read of note.txt with its shell tool, then the answer once its output is back
    {
        "match": "^codex: say hello$",
        "text": "<|channel|>analysis<|message|>Greet back.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello from gpt-oss.<|return|>",
    },
    {
        "match": r"^codex: what does note\.txt say\?$",
        "tool_output": "codex-note-[0-9a-f]{16}",
        "text": "<|channel|>analysis<|message|>The command printed the note.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>note.txt holds the note.<|return|>",
    },
    {
        # any other result (the command failed, e.g. its sandbox could not start): the loop ends, and the test says so
        "match": r"^codex: what does note\.txt say\?$",
        "tool_output": "",
        "text": "<|channel|>final<|message|>The command did not print the note.<|return|>",
    },
    {
        "match": r"^codex: what does note\.txt say\?$",
        "text": "<|channel|>analysis<|message|>Read the file with the shell.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.exec_command <|constrain|>json"
        '<|message|>{"cmd":"cat note.txt"}<|call|>',
    },
    # Claude Code (tests/test_claude_code.py): its prompt ends a user message that starts with its reminders; a plain
    # answer; a read of note.txt with its Bash tool, then the answer once the command's output is back
    {
        "match": r"claude: say hello\Z",
        "text": "<|channel|>analysis<|message|>Greet back.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Hello from gpt-oss.<|return|>",
    },
    {
        "match": r"claude: what does note\.txt say\?\Z",
        "tool_output": "claude-note-[0-9a-f]{16}",
        "text": "<|channel|>analysis<|message|>The command printed the note.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>note.txt holds the note.<|return|>",
    },
    {
        # any other result (the command was refused or failed): the loop ends, and the test says so
        "match": r"claude: what does note\.txt say\?\Z",
        "tool_output": "",
        "text": "<|channel|>final<|message|>The command did not print the note.<|return|>",
    },
    {
        "match": r"claude: what does note\.txt say\?\Z",
        "text": "<|channel|>analysis<|message|>Read the file with the shell.<|end|>"
        "<|start|>assistant<|channel|>commentary to=functions.Bash <|constrain|>json"
        '<|message|>{"command":"cat note.txt","description":"Print the note"}<|call|>',
    },
]


class FailingEngine(ScriptedEngine):
    """The scripted engine, dying after ``after`` steps with ``error`` (as a crashed vLLM would), in the requests
    ``fails`` picks by id (all by default); the run it dies in is closed (its engine request ends)."""

    def __init__(
        self,
        settings: ScriptedSettings,
        *,
        after: int,
        error: Exception,
        fails: Callable[[str], bool] = lambda request_id: True,
    ) -> None:
        super().__init__(settings)
        self._after = after
        self._error = error
        self._fails = fails

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineStep]:
        steps = super().generate(request)
        fails = self._fails(request.request_id)
        produced = 0
        try:
            async for step in steps:
                if fails and produced == self._after:
                    raise self._error
                produced += 1
                yield step
        finally:
            await steps.aclose()  # type: ignore[attr-defined]


def assert_golden(path: Path, data: bytes | str) -> None:
    """Exact bytes against a golden file; ``UPDATE_GOLDEN=1`` rewrites it instead (review the diff)."""
    raw = data.encode() if isinstance(data, str) else data
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    assert path.exists(), f"missing golden {path} (run with UPDATE_GOLDEN=1 once)"
    assert raw.decode() == path.read_bytes().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unavailable(what: str, reason: str) -> NoReturn:
    """Skip the test for want of ``what`` (a program the test runs), or fail it in CI (``CI`` set)."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is needed in CI: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def child_process(
    argv: list[str], log_path: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` as a child in its own session, its output in ``log_path`` (else dropped); on exit it is stopped
    (SIGTERM, then SIGKILL if it is still running after 30 s)."""
    if log_path is None:
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    else:
        with log_path.open("wb") as log:
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_answering(
    process: subprocess.Popen[bytes],
    url: str,
    *,
    name: str,
    timeout: float,
    interval: float,
    log: Callable[[], str],
    ready: Callable[[httpx.Response], bool] = lambda response: True,
) -> None:
    """Until a GET of ``url`` answers (and ``ready`` accepts the answer); an error with the tail of ``log()`` if the
    process exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}: {log()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if ready(httpx.get(url, timeout=5)):
                return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(interval)
    raise TimeoutError(f"{name} not ready after {timeout}s: {log()[-3000:]}")


def store_section(tmp: Path) -> dict[str, Any]:
    """A test server's ``store`` section: an SQLite file and a seal key in ``tmp``, never the user's cache folder."""
    key = tmp / "seal.key"
    if not key.exists():
        key.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return {"url": f"sqlite:///{tmp}/state.sqlite3", "seal_key_file": str(key)}


def scripted_settings(tmp: Path, **scripted: Any) -> Settings:
    keys = tmp / "keys.txt"
    keys.write_text(f"# test keys\n{API_KEY}\nsecond-key-xyz\n")
    return Settings(
        engine={
            "kind": "scripted",
            "scripted": {"mode": "replay", "rules": SCRIPT_RULES, **scripted},
        },
        harmony={"conversation_start_date": PINNED_DATE},
        auth={"api_keys_env": "GPTOSS_TEST_UNUSED_KEYS", "api_keys_file": str(keys)},
        store=store_section(tmp),
    )


@dataclass
class LiveServer:
    base_url: str
    api_key: str = API_KEY
    app: Any = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def health(self) -> dict[str, Any]:
        return httpx.get(f"{self.base_url}/health", timeout=10).json()  # type: ignore[no-any-return]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


def wait_ready(base_url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(f"{base_url}/health", timeout=5)
            if r.status_code == 200:
                return
            if r.json().get("status") == "failed":
                raise RuntimeError(f"engine failed: {r.text}")
        time.sleep(0.2)
    raise TimeoutError(f"server at {base_url} not ready after {timeout}s")


@contextlib.contextmanager
def threaded_server(
    settings: Settings,
    engine: Engine | None = None,
    *,
    wait: bool = True,
    wire_apis: tuple[Provider, ...] = WIRE_APIS,
    prepare: Callable[[FastAPI], None] | None = None,
) -> Iterator[LiveServer]:
    """The production server (``build_server``) on a loopback port, in a thread of this process (``wait``: until
    it is ready; ``prepare``: called with the app before it serves, e.g. to add a middleware)."""
    port = free_port()
    section = settings.server.model_copy(update={"host": "127.0.0.1", "port": port, "log_level": "warning"})
    app = create_app(settings.model_copy(update={"server": section}), engine, wire_apis)
    if prepare is not None:
        prepare(app)
    server = build_server(app)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        if wait:
            wait_ready(base, 60)
        yield LiveServer(base, app=app)
    finally:
        server.should_exit = True
        thread.join(30)


@contextlib.contextmanager
def subprocess_server(
    config: dict[str, Any], tmp: Path, ready_timeout: float = 900, args: tuple[str, ...] = ()
) -> Iterator[LiveServer]:
    """``python -m server serve --config FILE [ARGS]`` as a child process, exactly as a user starts it (its store in
    ``tmp`` unless ``config`` names one)."""
    port = free_port()
    config = {**config, "store": {**store_section(tmp), **config.get("store", {})}}
    config_path = tmp / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp / "server.log"
    env = {**os.environ, "GPTOSS_API_KEYS": API_KEY, "GPTOSS_SERVER__PORT": str(port)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--config", str(config_path), *args],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    live = LiveServer(base, process=process, log_path=log_path)
    try:
        try:
            wait_ready(base, ready_timeout, process)
        except Exception:
            sys.stderr.write(live.log_text()[-5000:])
            raise
        yield live
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


class WatchedEngine(ScriptedEngine):
    """The scripted engine, keeping each request it was given (``prompts``: their prompts as harmony text)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[GenerationRequest] = []

    @property
    def prompts(self) -> list[str]:
        return [get_encoding().decode(r.prompt_token_ids) for r in self.requests]

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineStep]:  # type: ignore[override]
        self.requests.append(request)
        async for step in super().generate(request):
            yield step


def generated_tokens(live: LiveServer) -> float:
    """vLLM's ``vllm:generation_tokens_total`` on the server's /metrics (all engines summed)."""
    text = httpx.get(live.base_url + "/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:generation_tokens_total")
    )


def finished_requests(live: LiveServer, reason: str) -> float:
    """vLLM's ``vllm:request_success_total`` for one ``finished_reason`` on the server's /metrics (all engines)."""
    text = httpx.get(live.base_url + "/metrics", timeout=30).text
    label = f'finished_reason="{reason}"'
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total") and label in line
    )


def wait_engine_idle(live: LiveServer, timeout: float = 30) -> None:
    """Until the server reports no engine request and no admitted request."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = live.health()
        if not health["engine_requests"] and not health["active_requests"]:
            return
        time.sleep(0.1)
    raise AssertionError(f"the engine still runs requests after {timeout}s: {live.health()}")
