"""What the contract test needs to know about one provider route.

Each provider adds its cases in ``tests/cases/<provider>.py`` as ``CASES: list[ProviderCase]``; the
contract test (``test_contract.py``) runs the same checks over every case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class ProviderCase:
    name: str
    chat_path: str
    # key -> the headers that carry it (the provider's own auth header)
    auth_headers: Callable[[str], dict[str, str]]
    # (messages, stream, extra fields) -> request body
    body: Callable[[Messages, bool, dict[str, Any]], dict[str, Any]]
    # non-streaming JSON body -> answer text
    text_of: Callable[[dict[str, Any]], str]
    # the SSE events' JSON payloads (terminator excluded) -> answer text
    stream_text_of: Callable[[list[dict[str, Any]]], str]
    # asserts the provider's error envelope for the given status
    check_error: Callable[[requests.Response, int], None]
    # a body field set that is out of range for this provider
    invalid_fields: dict[str, Any] = field(default_factory=lambda: {"temperature": 99})
    # field set naming an unknown model; None when the provider's body has no model
    unknown_model_fields: dict[str, Any] | None = field(default_factory=lambda: {"model": "no-such-model"})
    unknown_model_status: int = 404
    terminator: str = "data: [DONE]"


def sse_payloads(raw: str, terminator: str = "data: [DONE]") -> tuple[list[dict[str, Any]], list[str]]:
    """Split an SSE body into JSON payloads; returns (payloads, all event blocks)."""
    blocks = [b for b in raw.split("\n\n") if b]
    payloads = []
    for block in blocks:
        for line in block.split("\n"):
            if line.startswith("data: ") and line != terminator:
                payloads.append(json.loads(line[len("data: ") :]))
    return payloads, blocks


def openai_stream_text(payloads: list[dict[str, Any]]) -> str:
    return "".join((p["choices"][0]["delta"].get("content") or "") for p in payloads if p.get("choices"))
