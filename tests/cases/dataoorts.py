"""Contract case for Dataoorts (``POST /api/v1``, Cloudflare Workers AI envelope)."""

from __future__ import annotations

from typing import Any

import requests

from tests.contract import ProviderCase

MODEL = "openai/gpt-oss-120b"


def check_error(r: requests.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert list(body) == ["result", "success", "errors", "messages"]
    assert body["success"] is False and body["messages"] == []
    (error,) = body["errors"]
    assert list(error) == ["code", "message"]
    assert isinstance(error["code"], int) and isinstance(error["message"], str) and error["message"]


def body(messages: list[dict[str, Any]], stream: bool, extra: dict[str, Any]) -> dict[str, Any]:
    """The wrapper: ``model`` at top level, everything else inside ``data``."""
    extra = dict(extra)
    model = extra.pop("model", MODEL)
    return {"model": model, "data": {"messages": messages, "stream": stream, **extra}}


def stream_text(payloads: list[dict[str, Any]]) -> str:
    return "".join(p.get("response") or "" for p in payloads)


CASES = [
    ProviderCase(
        name="dataoorts",
        chat_path="/api/v1",
        auth_headers=lambda key: {"Authorization": f"Bearer {key}"},
        body=body,
        text_of=lambda r: r["result"]["response"],
        stream_text_of=stream_text,
        check_error=check_error,
        invalid_fields={"temperature": 5.5},
        unknown_model_fields={"model": "no-such-model"},
        unknown_model_status=400,
    )
]
