"""Contract case for E2E Networks TIR (vLLM behind a gateway, under a project path prefix)."""

from __future__ import annotations

from typing import Any

import requests

from routes.e2e import ids
from tests.cases.openai import EXPECTED, RANGE_ERRORS, SAMPLING  # the same request model (vLLM's)
from tests.contract import ProviderCase, openai_logprobs_of, openai_stream_text

BASE = "/project/p-5915/genai/gpt_oss_120b/v1"
MODEL = "gpt_oss_120b"


def check_error(r: requests.Response, status: int) -> None:
    """vLLM's ``{"error": {message, type, param, code}}`` with an integer ``code`` equal to the status."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["error"]
    assert list(body["error"]) == ["message", "type", "param", "code"]
    assert body["error"]["code"] == status and isinstance(body["error"]["code"], int)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def pin(monkeypatch: Any) -> None:
    monkeypatch.setattr(ids, "new_id", lambda: "chatcmpl-82c7e2c5-a99c-4869-8068-49aa705812ba")
    monkeypatch.setattr(ids, "now", lambda: 1770614085.0)


def body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "messages": messages, "stream": stream, **extra}


CASES = [
    ProviderCase(
        name="e2e",
        chat_path=BASE + "/chat/completions",
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=body,
        text_of=lambda r: r["choices"][0]["message"]["content"] or "",
        stream_text_of=openai_stream_text,
        check_error=check_error,
        pin=pin,
        sdk_base=BASE,
        logprobs_fields=lambda n: {"logprobs": True, "top_logprobs": n, "return_token_ids": True},
        logprobs_of=openai_logprobs_of,
        ignore_eos=True,
        sampling_fields=SAMPLING,
        expected_sampling=EXPECTED,
        range_errors=RANGE_ERRORS,
    )
]
