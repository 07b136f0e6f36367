"""Claude Code (npm ``@anthropic-ai/claude-code``, pinned) against the Messages API on the scripted engine:
``claude -p`` answers, and a turn that runs its Bash tool sends the command's real output and the loop's thinking
back, and answers. Its settings, sessions and state live in a scratch home; nothing of this environment reaches it."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import API_KEY, LiveServer, WatchedEngine, scripted_settings, threaded_server
from tests.npm_clients import npm_binary

CLAUDE_CODE = ("@anthropic-ai/claude-code", "2.1.332")
TIMEOUT_S = 180
BASH_CALL = (
    "<|start|>assistant<|channel|>commentary to=functions.Bash <|constrain|>json"
    '<|message|>{"command":"cat note.txt","description":"Print the note"}<|call|>'
)


@pytest.fixture(scope="module")
def claude() -> Path:
    return npm_binary(*CLAUDE_CODE, "claude")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, WatchedEngine]]:
    settings = scripted_settings(tmp_path_factory.mktemp("claude-code"))
    engine = WatchedEngine(settings.engine.scripted)
    with threaded_server(settings, engine) as live:
        yield live, engine


def run_claude(
    claude: Path, live: LiveServer, prompt: str, work: Path, *flags: str
) -> subprocess.CompletedProcess[str]:
    """``claude -p PROMPT`` in ``work`` with the server as its API (``ANTHROPIC_BASE_URL``), its home and config
    folder beside ``work``, the server's context window told (it knows no window for a model name it does not know),
    and its update checks and telemetry off."""
    home = work.parent / f"{work.name}-home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": live.base_url,
        "ANTHROPIC_API_KEY": API_KEY,
        "CLAUDE_CODE_MAX_CONTEXT_TOKENS": str(live.app.state.ctx.engine.info.max_model_len),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    argv = [str(claude), "-p", prompt, "--model", "gpt-oss-120b", *flags]
    try:
        return subprocess.run(argv, cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TIMEOUT_S)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"claude -p ran past {TIMEOUT_S}s:\n{err[-4000:]}")


def test_claude_code_answers(claude: Path, server: tuple[LiveServer, WatchedEngine], tmp_path: Path) -> None:
    live, engine = server
    work = tmp_path / "work"
    work.mkdir()
    before = len(engine.prompts)
    done = run_claude(claude, live, "claude: say hello", work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "Hello from gpt-oss.", done.stdout + done.stderr
    prompt = engine.prompts[before:][-1]
    # Claude Code's own instructions and its tools reached the model; its effort (high) set harmony's
    assert "Reasoning: high" in prompt and "type Bash = (_: {" in prompt and "type Read = (_: {" in prompt
    assert "Primary working directory: " + str(work) in prompt  # its environment, sent as a system turn


def test_claude_code_runs_its_bash_tool_and_answers_from_the_output(
    claude: Path, server: tuple[LiveServer, WatchedEngine], tmp_path: Path
) -> None:
    live, engine = server
    work = tmp_path / "work"
    work.mkdir()
    note = f"claude-note-{secrets.token_hex(8)}"  # known only to the file: the server can see it only from Claude Code
    (work / "note.txt").write_text(note + "\n")
    before = len(engine.prompts)
    # -p mode asks no questions: a tool runs only when allowed beforehand
    done = run_claude(claude, live, "claude: what does note.txt say?", work, "--allowedTools", "Bash")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "note.txt holds the note.", done.stdout + done.stderr
    call_turn, answer_turn = engine.prompts[before:][-2:]
    assert note not in call_turn
    # the second request carries the call, the command's real output and the thinking before the call: Claude Code
    # asks for thinking shown as omitted and sends the empty block back with its signature, which holds the text
    assert BASH_CALL in answer_turn
    tool_result = answer_turn.split("<|start|>functions.Bash<|channel|>commentary to=assistant<|message|>")[-1]
    assert tool_result.split("<|end|>")[0].strip() == note, tool_result
    assert "<|channel|>analysis<|message|>Read the file with the shell.<|end|>" in answer_turn
    assert answer_turn.endswith("<|end|><|start|>assistant")
