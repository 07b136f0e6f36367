"""What a recorded answer and its replay may differ in: ids, clocks and measured durations (every other byte is
the same). Both sides are normalized with ``normalize`` before they are compared."""

from __future__ import annotations

import re
from typing import Any

import requests

from tests.contract import ProviderCase

# keys whose values are ids (random per answer), clocks, durations measured on the server, or seals of them
VOLATILE_KEYS = (
    "id",
    "call_id",
    "item_id",
    "response_id",
    "created",
    "created_at",
    "completed_at",
    "signature",
    "(?:prompt|predicted)_(?:ms|per_token_ms|per_second)",
    "(?:total|load|prompt_eval|eval)_duration",
)
VOLATILE = re.compile(rf'"({"|".join(VOLATILE_KEYS)})":("(?:[^"\\]|\\.)*"|[-0-9.eE+]+|null)')


def normalize(raw: str) -> str:
    """``raw`` with each volatile value replaced by ``<key>``."""
    return VOLATILE.sub(lambda m: f'"{m.group(1)}":<{m.group(1)}>', raw)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


# routes with vLLM's n choices and prompt_logprobs
VLLM_SHAPED = frozenset({"openai", "openai-prefixed", "e2e"})


def exchanges(case: ProviderCase, budget: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The requests a record/replay comparison sends to one route: an answer with reasoning (streamed and not),
    logprobs where the route has them, and a request with tools (streamed); ``budget``: at most that many tokens."""
    limit = case.length_fields(budget) if budget is not None else {}
    plain = [{"role": "user", "content": "reason"}]
    out = [("plain", case.body(plain, False, {**limit})), ("plain-stream", case.body(plain, True, {**limit}))]
    if case.logprobs_fields is not None:
        fields = {**case.logprobs_fields(2), **limit}
        out += [
            ("logprobs", case.body(plain, False, dict(fields))),
            ("logprobs-stream", case.body(plain, True, dict(fields))),
        ]
    weather = [{"role": "user", "content": "weather"}]
    out.append(("tools-stream", case.body(weather, True, {"tools": [WEATHER_TOOL], **limit})))
    if case.name in VLLM_SHAPED:
        # seeded, so that each choice is its own request (choice i samples with seed + i)
        out.append(("n-stream", case.body(plain, True, {"n": 2, "seed": 5, **limit})))
        out.append(("prompt-logprobs", case.body(plain, False, {"prompt_logprobs": 1, **limit})))
    return out


def exchange(base_url: str, api_key: str, case: ProviderCase, body: dict[str, Any]) -> str:
    """Status, content type and the normalized body bytes of one request."""
    r = requests.post(base_url + case.chat_path, json=body, headers=case.auth_headers(api_key), timeout=300)
    return f"{r.status_code} {r.headers.get('content-type')}\n{normalize(r.content.decode())}"


def session(base_url: str, api_key: str, cases: list[ProviderCase], budget: int | None = None) -> dict[str, str]:
    """Every case's exchanges, by ``route/label``."""
    return {
        f"{case.name}/{label}": exchange(base_url, api_key, case, body)
        for case in cases
        for label, body in exchanges(case, budget)
    }
