"""Contract case for AI/ML API (``POST /chat/completions``; ``/v1/...`` belongs to it only when
``providers.v1_owner`` is ``aimlapi``, which tests/test_aimlapi_route.py covers)."""

from __future__ import annotations

from typing import Any

import requests

from routes.aimlapi import ids
from tests.contract import ProviderCase, openai_stream_text

MODEL = "openai/gpt-oss-120b"
ERROR_KEYS = ["requestId", "statusCode", "timestamp", "path", "message"]


def check_error(r: requests.Response, status: int) -> None:
    """AI/ML API's flat envelope, with ``statusCode`` repeating the HTTP status as a number."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ERROR_KEYS
    assert body["statusCode"] == status
    assert isinstance(body["requestId"], str) and len(body["requestId"]) == 21
    assert body["path"] == r.request.path_url.split("?")[0]
    assert isinstance(body["message"], str) and body["message"]


def pin(monkeypatch: Any) -> None:
    monkeypatch.setattr(ids, "now", lambda: 1754554066.0)
    monkeypatch.setattr(ids, "new_id", lambda created: f"gen-{created}-7Rcl38Atg9I9CLPcnE3t")


# the spec's sampling fields (no stop, no logprobs since 2025-08-26)
SAMPLING: dict[str, Any] = {
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 20,
    "min_p": 0.1,
    "seed": 42,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.25,
    "repetition_penalty": 1.1,
    "logit_bias": {"100": -5},
    "max_completion_tokens": 50,
}
EXPECTED = {
    **{k: v for k, v in SAMPLING.items() if k not in ("logit_bias", "max_completion_tokens")},
    "logit_bias": {100: -5.0},
    "max_tokens": 50,
}
RANGE_ERRORS: list[dict[str, Any]] = [
    {"max_tokens": 0},
    {"max_completion_tokens": 10_000_000},  # past the context window
    {"temperature": 2.1},
    {"top_p": 0.001},
    {"min_p": 0.9999},
    {"seed": 0},
    {"frequency_penalty": -2.5},
    {"logit_bias": {"100": -101}},
]


def body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "messages": messages, "stream": stream, **extra}


CASES = [
    ProviderCase(
        name="aimlapi",
        chat_path="/chat/completions",
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=body,
        text_of=lambda r: r["choices"][0]["message"]["content"] or "",
        stream_text_of=openai_stream_text,
        check_error=check_error,
        invalid_fields={"min_p": 0},
        unknown_model_status=400,
        pin=pin,
        sdk_base="",
        sampling_fields=SAMPLING,
        expected_sampling=EXPECTED,
        range_errors=RANGE_ERRORS,
        # logprobs left AI/ML API's spec on 2025-08-26 (replies carry "logprobs": null); no ignore_eos
    )
]
