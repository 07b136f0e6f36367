"""Real agent clients against the Responses API on the scripted engine: OpenAI's Agents SDK runs a function tool
in a loop (plainly and streamed)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.helpers import API_KEY, LiveServer, scripted_settings, threaded_server
from tests.test_responses import RecordingEngine, recording_engine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, RecordingEngine]]:
    settings = scripted_settings(tmp_path_factory.mktemp("agents"))
    engine = recording_engine(settings)
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


def test_the_agents_sdk_runs_a_tool_loop(server: tuple[LiveServer, RecordingEngine]) -> None:
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


def test_the_agents_sdk_streams_a_tool_loop(server: tuple[LiveServer, RecordingEngine]) -> None:
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
