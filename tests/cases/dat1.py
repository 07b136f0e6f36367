"""Contract cases for dat1 (llama-server behind dat1's gateway): the documented invoke-chat route with
``X-API-Key`` (no model in the body) and the OpenAI-style open-ai route with Bearer and ``model``."""

from __future__ import annotations

import itertools
from typing import Any

import requests

from routes.dat1 import ids
from tests.contract import ProviderCase, openai_logprobs_of, openai_stream_text

INVOKE = "/api/v1/collection/gpt-120-oss/invoke-chat"
OPENAI_BASE = "/api/v1/collection/open-ai"
MODEL = "gpt-120-oss"


def check_error(r: requests.Response, status: int) -> None:
    """llama-server's ``{"error": {"code", "message", "type"}}`` with ``code`` equal to the HTTP status."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    body = r.json()
    assert list(body) == ["error"]
    assert list(body["error"])[:3] == ["code", "message", "type"]
    assert body["error"]["code"] == status
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def pin(monkeypatch: Any) -> None:
    counter = itertools.count()
    monkeypatch.setattr(ids, "now", lambda: 1754303118)
    monkeypatch.setattr(ids, "new_id", lambda: "chatcmpl-a6oVnja9gLmx3o948hU46mWUD7sWjsPF")
    monkeypatch.setattr(ids, "new_tool_call_id", lambda: f"{next(counter):032d}")


# llama-server's features: response_format json_schema, tool_choice as a string only (an object is the wrong type
# and reads as "auto"), logprobs + top_logprobs (llama-server's entries add "id"), ignore_eos
# llama-server's spellings (repeat_penalty, n_probs via logprobs/top_logprobs, chat_template_kwargs)
SAMPLING: dict[str, Any] = {
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 20,
    "min_p": 0.1,
    "seed": 42,
    "stop": ["END"],
    "presence_penalty": 0.5,
    "frequency_penalty": 0.25,
    "repeat_penalty": 1.1,
    "logit_bias": {"100": -5},
    "max_tokens": 50,
    "logprobs": True,
    "top_logprobs": 2,
    "ignore_eos": True,
}
EXPECTED: dict[str, Any] = {
    **{k: v for k, v in SAMPLING.items() if k not in ("logit_bias", "repeat_penalty")},
    "repetition_penalty": 1.1,
    "logit_bias": {100: -5.0},
}
# llama-server range-checks almost nothing (a wrongly typed value reads as the default; max_tokens past the
# context is clamped): these are what it refuses
RANGE_ERRORS: list[dict[str, Any]] = [
    {"n": 2},
    {"top_logprobs": 2},  # without logprobs
    {"repeat_last_n": -2},
    {"response_format": {"type": "regex"}},
]
FEATURES: dict[str, Any] = {
    "effort_fields": {"chat_template_kwargs": {"reasoning_effort": "high"}},
    "sampling_fields": SAMPLING,
    "expected_sampling": EXPECTED,
    "range_errors": RANGE_ERRORS,
    "pin": pin,
    "named_tool_fields": None,
    "logprobs_fields": lambda n: {"logprobs": True, "top_logprobs": n},
    "logprobs_of": openai_logprobs_of,
    "ignore_eos": True,
}


def invoke_body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    return {"messages": messages, "stream": stream, **extra}


def openai_body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "messages": messages, "stream": stream, **extra}


def text_of(r: dict[str, Any]) -> str:
    return r["choices"][0]["message"]["content"] or ""


CASES = [
    ProviderCase(
        name="dat1",
        chat_path=INVOKE,
        auth_headers=lambda key: {"X-API-Key": key},
        body=invoke_body,
        text_of=text_of,
        stream_text_of=openai_stream_text,
        check_error=check_error,
        # llama-server takes any temperature; `n` != 1 is what it refuses
        invalid_fields={"n": 2},
        unknown_model_fields=None,
        **FEATURES,
    ),
    ProviderCase(
        name="dat1-open-ai",
        chat_path=OPENAI_BASE + "/chat/completions",
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=openai_body,
        text_of=text_of,
        stream_text_of=openai_stream_text,
        check_error=check_error,
        invalid_fields={"n": 2},
        unknown_model_fields=None,  # llama-server serves any `model`
        sdk_base=OPENAI_BASE,
        **FEATURES,
    ),
]
