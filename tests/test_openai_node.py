"""openai-node (npm ``openai``, pinned) against every OpenAI-shaped route on the scripted engine: its
``chat.completions.stream()`` helper and a streamed ``runTools`` loop with one tool. Both fold the stream into a
completion and refuse one whose deltas never name the role ("missing role for choice 0")."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import LiveServer, scripted_settings, threaded_server
from tests.npm_clients import npm_package

OPENAI_NODE = ("openai", "6.49.0")  # 7.x needs node 22; these machines have node 20
SCRIPT = Path(__file__).parent / "node" / "openai_helpers.cjs"
NODE_TIMEOUT_S = 60
SDK_CASES = [case for case in all_cases() if case.sdk_base is not None]


def run_node(live: LiveServer, case: ProviderCase, mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NODE_PATH": str(npm_package(*OPENAI_NODE)), "OPENAI_API_KEY": live.api_key}
    model = case.body([], False, {})["model"]
    argv = ["node", str(SCRIPT), live.base_url + (case.sdk_base or ""), model, mode]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=NODE_TIMEOUT_S)


def result_of(live: LiveServer, case: ProviderCase, mode: str) -> dict[str, Any]:
    done = run_node(live, case, mode)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", SDK_CASES, ids=lambda c: c.name)
def test_chat_completions_stream(scripted_server: LiveServer, case: ProviderCase) -> None:
    result = result_of(scripted_server, case, "stream")
    assert result == {
        "deltas": "Hello! How can I help?",
        "role": "assistant",
        "content": "Hello! How can I help?",
        "finish_reason": "stop",
    }


@pytest.mark.parametrize("case", SDK_CASES, ids=lambda c: c.name)
def test_run_tools(scripted_server: LiveServer, case: ProviderCase) -> None:
    result = result_of(scripted_server, case, "tools")
    assert result["calls"] == [{"city": "Paris"}]  # the helper ran the tool with the arguments the model wrote
    assert result["content"] == "It is 18°C and sunny in Paris."  # the answer after the tool's result
    assert result["roles"] == ["user", "assistant", "tool", "assistant"]


@pytest.fixture(scope="module")
def roleless_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = scripted_settings(tmp_path_factory.mktemp("oxen-roleless"))
    settings.providers.oxen.stream_role_chunk = False
    with threaded_server(settings) as live:
        yield live


@pytest.mark.parametrize("mode", ["stream", "tools"])
def test_a_stream_without_a_role_fails_the_helpers(roleless_server: LiveServer, mode: str) -> None:
    """Why Oxen's role chunk is on by default: without it both helpers fail."""
    (oxen,) = [case for case in SDK_CASES if case.name == "oxen"]
    done = run_node(roleless_server, oxen, mode)
    assert done.returncode == 1 and "missing role for choice 0" in done.stderr
