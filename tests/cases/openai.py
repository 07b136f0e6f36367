from __future__ import annotations

from typing import Any

import requests

from routes.openai import ids
from tests.contract import ProviderCase, openai_logprobs_of, openai_stream_text


def check_error(r: requests.Response, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["message", "type", "param", "code"]


def pin(monkeypatch: Any) -> None:
    monkeypatch.setattr(ids, "new_id", lambda: "chatcmpl-0123456789abcdef0123456789abcdef")
    monkeypatch.setattr(ids, "now", lambda: 1770614085.0)


# vLLM's sampling fields
SAMPLING: dict[str, Any] = {
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 20,
    "min_p": 0.1,
    "seed": 42,
    "stop": ["END"],
    "presence_penalty": 0.5,
    "frequency_penalty": 0.25,
    "repetition_penalty": 1.1,
    "logit_bias": {"100": -5},
    "max_tokens": 50,
    "logprobs": True,
    "top_logprobs": 2,
    "ignore_eos": True,
    "min_tokens": 3,
}
EXPECTED = {**{k: v for k, v in SAMPLING.items() if k != "logit_bias"}, "logit_bias": {100: -5.0}}
RANGE_ERRORS: list[dict[str, Any]] = [
    {"max_tokens": 0},
    {"max_tokens": 10_000_000},  # past the context window
    {"top_p": 0},
    {"logprobs": True, "top_logprobs": 21},
    {"top_logprobs": 2},  # without logprobs
    {"n": 17},  # over limits.max_n
    {"logit_bias": {"100": 101}},
]


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
        logprobs_fields=lambda n: {"logprobs": True, "top_logprobs": n, "return_token_ids": True},
        logprobs_of=openai_logprobs_of,
        ignore_eos=True,
        sampling_fields=SAMPLING,
        expected_sampling=EXPECTED,
        range_errors=RANGE_ERRORS,
    )
    for name, path in (("openai", "/v1/chat/completions"), ("openai-prefixed", "/openai/v1/chat/completions"))
]
