"""Contract case for Oxen.ai (``POST /api/ai/chat/completions``)."""

from __future__ import annotations

from typing import Any

import requests

from routes.oxen import ids
from tests.contract import ProviderCase, openai_stream_text


def check_error(r: requests.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    if status == 404:
        assert body == {"error": {"message": body["error"]["message"]}}
        assert body["error"]["message"].startswith("Model not found: ")
        return
    assert list(body) == ["error", "status", "status_message"]
    assert body["status"] == "error"
    assert body["status_message"] == body["error"]["type"]
    expected = {400: "invalid_params", 401: "unauthenticated"}.get(status)
    if expected is not None:
        assert body["error"]["type"] == expected
    assert list(body["error"])[:2] == ["type", "title"]


def pin(monkeypatch: Any) -> None:
    monkeypatch.setattr(ids, "new_id", lambda: "chatcmpl-00000000-0000-4000-8000-000000000000")
    monkeypatch.setattr(ids, "now", lambda: 1775090332)


# Oxen's documented fields (temperature 0-2, top_p, penalties, max_tokens) and the OpenAI ones its clients send
SAMPLING: dict[str, Any] = {
    "temperature": 0.5,
    "top_p": 0.9,
    "seed": 42,
    "stop": ["END"],
    "presence_penalty": 0.5,
    "frequency_penalty": 0.25,
    "max_tokens": 50,
}
RANGE_ERRORS: list[dict[str, Any]] = [
    {"temperature": 2.5},
    {"max_tokens": 0},
    {"max_tokens": 10_000_000},  # past the context window
    {"top_p": 0},
    {"presence_penalty": 3},
    {"n": 2},
]


def body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gpt-oss-120b", "messages": messages, "stream": stream, **extra}


CASES = [
    ProviderCase(
        name="oxen",
        chat_path="/api/ai/chat/completions",
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=body,
        text_of=lambda r: r["choices"][0]["message"]["content"] or "",
        stream_text_of=openai_stream_text,
        check_error=check_error,
        invalid_fields={"temperature": 2.5},
        pin=pin,
        sdk_base="/api/ai",
        # Oxen's completion object has no reasoning field (providers.oxen.reasoning_field adds one) and no logprobs
        carries_reasoning=False,
        sampling_fields=SAMPLING,
        expected_sampling=SAMPLING,
        range_errors=RANGE_ERRORS,
    )
]
