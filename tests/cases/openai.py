from __future__ import annotations

from typing import Any

import requests

from routes import openai as route
from tests.contract import ProviderCase, openai_logprobs_of, openai_stream_text


def check_error(r: requests.Response, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["message", "type", "param", "code"]


def pin(monkeypatch: Any) -> None:
    monkeypatch.setattr(route, "new_id", lambda: "chatcmpl-0123456789abcdef0123456789abcdef")
    monkeypatch.setattr(route, "now", lambda: 1770614085.0)


def body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": "gpt-oss-120b", "messages": messages, "stream": stream, **extra}


CASES = [
    ProviderCase(
        name=name,
        chat_path=path,
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=body,
        text_of=lambda r: r["choices"][0]["message"]["content"] or "",
        stream_text_of=openai_stream_text,
        check_error=check_error,
        pin=pin,
        sdk_base=path.removesuffix("/chat/completions"),
        logprobs_fields=lambda n: {"logprobs": True, "top_logprobs": n},
        logprobs_of=openai_logprobs_of,
        ignore_eos=True,
    )
    for name, path in (("openai", "/v1/chat/completions"), ("openai-prefixed", "/openai/v1/chat/completions"))
]
