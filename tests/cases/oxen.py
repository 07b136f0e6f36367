"""Contract case for Oxen.ai (``POST /api/ai/chat/completions``)."""

from __future__ import annotations

from typing import Any

import requests

from routes import oxen as route
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
    monkeypatch.setattr(route, "new_id", lambda: "chatcmpl-00000000-0000-4000-8000-000000000000")
    monkeypatch.setattr(route, "now", lambda: 1775090332)


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
    )
]
