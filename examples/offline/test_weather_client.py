import json
from pathlib import Path

import openai
import pytest

TRANSCRIPT = Path(__file__).parent / "transcript.yaml"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def get_weather(city: str) -> str:
    return f"{city}: sunny, 18C"


def ask(client: openai.OpenAI, question: str) -> str:
    """The client under test: one question, with a tool loop."""
    messages = [{"role": "user", "content": question}]
    while True:
        message = (
            client.chat.completions.create(model="gpt-oss-120b", messages=messages, tools=TOOLS).choices[0].message
        )
        if not message.tool_calls:
            return message.content
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            result = get_weather(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})


@pytest.fixture
def client(gptoss_server):
    return openai.OpenAI(base_url=gptoss_server.urls["openai"], api_key=gptoss_server.api_key, max_retries=0)


@pytest.mark.gptoss(transcript=TRANSCRIPT)
def test_the_tool_loop(client):
    assert ask(client, "What is the weather in Paris?") == "It is sunny in Paris today."


@pytest.mark.gptoss(transcript=TRANSCRIPT)
def test_another_question(client):
    assert ask(client, "Will it rain in Oslo?") == "I can only tell you about the weather in Paris."


@pytest.mark.gptoss(transcript=TRANSCRIPT, settings={"limits": {"max_tools": 0}})
def test_an_error_the_server_sends(client):
    with pytest.raises(openai.BadRequestError):
        ask(client, "What is the weather in Paris?")


@pytest.mark.gptoss(
    transcript=TRANSCRIPT, faults=[{"route": "openai", "first": 1, "kind": "rate_limit", "retry_after": 0}]
)
def test_a_throttled_request_is_retried(gptoss_server):
    client = openai.OpenAI(base_url=gptoss_server.urls["openai"], api_key=gptoss_server.api_key, max_retries=1)
    assert ask(client, "Will it rain in Oslo?") == "I can only tell you about the weather in Paris."
