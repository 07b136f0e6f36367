"""The pytest plugin of the offline testing kit: the README's worked example runs as a client's test suite would run
it (pytester), the fixture's URLs suit each client library, configuration by marker or by overriding the config
fixture, and the fault plan passed on as settings."""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path

import anthropic
import ollama
import openai
import pytest
import requests

from routes import WIRE_APIS
from server.engine.recording import RecordingEngine
from server.engine.scripted import ScriptedEngine
from server.settings import ScriptedSettings
from server.testing import pytest_plugin
from server.testing.offline import OfflineConfig, overrides, serve
from tests.cases import all_cases
from tests.helpers import PINNED_DATE, REPO, SCRIPT_RULES, scripted_settings, threaded_server

pytest_plugins = ["pytester"]

EXAMPLE = REPO / "examples" / "offline"
# The installed package registers the plugin (entry point ``pytest11``: ``gptoss``), as a client suite gets it; an
# editable checkout installed before the entry point existed loads it by module name.
INSTALLED = any(e.name == "gptoss" for e in importlib.metadata.entry_points(group="pytest11"))
LOAD = () if INSTALLED else ("-p", "server.testing.pytest_plugin")
PLUGIN = (*LOAD, "--strict-markers", "-p", "no:randomly", "-p", "no:cacheprovider")


@pytest.fixture(scope="module", autouse=True)
def _engine_checks_loaded() -> None:
    """The scripted engine imports vLLM (and torch) for its request checks. pytester's in-process runs restore
    ``sys.modules`` afterwards, and torch's C extension cannot be imported a second time: import it here, before the
    first run, so that every run finds it loaded (as in a client's own suite, whose process imports it once)."""
    from server.engine import vllm_engine

    vllm_engine.load_checks()


def test_the_readme_holds_the_example_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Testing your client offline", 1)[1].split("\n## ", 1)[0]
    for name in ("transcript.yaml", "test_weather_client.py"):
        assert (EXAMPLE / name).read_text() in section, name


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    for path in EXAMPLE.iterdir():
        if path.is_file():
            pytester.makefile(path.suffix, **{path.stem: path.read_text()})
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(passed=4)


def test_a_failing_client_fails(pytester: pytest.Pytester) -> None:
    """The example's transcript with another answer: the example's tool-loop test sees it and fails."""
    for path in EXAMPLE.iterdir():
        if path.is_file():
            text = path.read_text().replace("It is sunny in Paris today.", "Rain.") if path.suffix == ".yaml" else None
            pytester.makefile(path.suffix, **{path.stem: text or path.read_text()})
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=3, failed=1)


def test_the_config_fixture_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest
from server.testing.offline import OfflineConfig

@pytest.fixture
def gptoss_config():
    return OfflineConfig(transcript=[{"content": "From the suite's conftest."}], api_key="sk-suite")
"""
    )
    pytester.makepyfile(
        """
import requests

def test_answer(gptoss_server):
    assert gptoss_server.api_key == "sk-suite"
    r = requests.post(
        gptoss_server.urls["ollama"] + "/api/chat",
        json={"model": "gpt-oss:120b", "messages": [{"role": "user", "content": "hi"}], "stream": False},
        headers={"Authorization": "Bearer sk-suite"},
    )
    assert r.json()["message"]["content"] == "From the suite's conftest."
"""
    )
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=1)


def test_a_marker_with_a_yaml_transcript(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        '''
import openai
import pytest

YAML = """
- match: ^hi$
  reasoning: Greet.
  content: Hello there.
"""

@pytest.mark.gptoss(YAML)
def test_answer(gptoss_server):
    client = openai.OpenAI(base_url=gptoss_server.urls["responses"], api_key=gptoss_server.api_key, max_retries=0)
    assert client.responses.create(model="gpt-oss-120b", input="hi").output_text == "Hello there."

def test_echo_without_a_marker(gptoss_server):
    client = openai.OpenAI(base_url=gptoss_server.urls["openai"], api_key=gptoss_server.api_key, max_retries=0)
    answer = client.chat.completions.create(model="gpt-oss-120b", messages=[{"role": "user", "content": "echo me"}])
    assert answer.choices[0].message.content == "echo me"
'''
    )
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=2)


def test_the_urls_suit_each_client_library(tmp_path: Path) -> None:
    transcript = [{"reasoning": "Think.", "content": "Scripted."}]
    with serve(OfflineConfig(transcript=transcript), tmp_path) as server:
        assert set(server.urls) == set(server.prefixes) == {p.name for p in WIRE_APIS}
        assert server.urls["openai"] == server.base_url + "/v1"
        messages = [{"role": "user", "content": "hi"}]
        sdk_cases = {"openai": "openai", "e2e": "e2e", "dat1": "dat1-open-ai", "oxen": "oxen", "aimlapi": "aimlapi"}
        for name, case_name in sdk_cases.items():
            model = next(c for c in all_cases() if c.name == case_name).body(messages, False, {})["model"]
            client = openai.OpenAI(base_url=server.urls[name], api_key=server.api_key, max_retries=0)
            answer = client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
            assert answer.choices[0].message.content == "Scripted.", name
        claude = anthropic.Anthropic(base_url=server.urls["anthropic"], api_key=server.api_key, max_retries=0)
        reply = claude.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=messages)  # type: ignore[arg-type]
        assert [b.text for b in reply.content if b.type == "text"] == ["Scripted."]
        local = ollama.Client(host=server.urls["ollama"], headers={"Authorization": f"Bearer {server.api_key}"})
        assert local.chat(model="gpt-oss:120b", messages=messages).message.content == "Scripted."
        (dataoorts,) = server.prefixes["dataoorts"]
        body = {"model": "openai/gpt-oss-120b", "data": {"messages": messages}}
        r = requests.post(dataoorts, json=body, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=30)
        assert r.json()["result"]["response"] == "Scripted."
        assert requests.post(server.urls["openai"] + "/chat/completions", json={}, timeout=30).status_code == 401


def test_the_fault_plan_is_passed_on_as_settings(tmp_path: Path) -> None:
    plan = [{"route": "openai", "first": 1, "kind": "unavailable"}]
    tree = overrides(OfflineConfig(faults=plan, settings={"limits": {"max_tools": 2}}), tmp_path)
    assert tree["testing"] == {"faults_enabled": True, "faults": plan}
    assert tree["limits"] == {"max_tools": 2} and tree["engine"]["kind"] == "scripted"
    assert "testing" not in overrides(OfflineConfig(), tmp_path)
    with serve(OfflineConfig(faults=plan), tmp_path / "server") as server:
        client = openai.OpenAI(base_url=server.urls["openai"], api_key=server.api_key, max_retries=0)
        messages = [{"role": "user", "content": "echo"}]
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="gpt-oss-120b", messages=messages)  # type: ignore[arg-type]
        assert caught.value.status_code == 503
        answer = client.chat.completions.create(model="gpt-oss-120b", messages=messages)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "echo"


def test_the_plugin_is_registered_and_clashes_with_no_fixture_of_this_suite() -> None:
    entry_points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    assert entry_points == {"gptoss": pytest_plugin.__name__}
    ours = {"gptoss_server", "gptoss_config"}
    assert ours <= set(vars(pytest_plugin))
    tree = ast.parse((REPO / "tests" / "conftest.py").read_text())
    suite = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    assert suite and not suite & ours


def scripted() -> ScriptedSettings:
    return ScriptedSettings(mode="replay", rules=SCRIPT_RULES)


def test_a_recording_serves_what_was_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "recording"
    messages = [{"role": "user", "content": "reason"}]
    with threaded_server(scripted_settings(tmp_path), RecordingEngine(ScriptedEngine(scripted()), folder)) as live:
        client = openai.OpenAI(base_url=live.base_url + "/v1", api_key=live.api_key, max_retries=0)
        recorded = client.chat.completions.create(model="gpt-oss-120b", messages=messages)  # type: ignore[arg-type]
    # the prompt holds the conversation's date: the replaying server pins the recording server's
    config = OfflineConfig(recording=folder, settings={"harmony": {"conversation_start_date": PINNED_DATE}})
    with serve(config, tmp_path / "offline") as server:
        client = openai.OpenAI(base_url=server.urls["openai"], api_key=server.api_key, max_retries=0)
        answer = client.chat.completions.create(model="gpt-oss-120b", messages=messages)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == recorded.choices[0].message.content == "Hello! How can I help?"
        with pytest.raises(openai.NotFoundError, match="request hash"):
            client.chat.completions.create(model="gpt-oss-120b", messages=[{"role": "user", "content": "other"}])
