"""An answer cut short (request deadline, drain on shutdown) never ends as a normal stop or length: each route says
"truncated" its provider's own way (see the README's table), and a non-streaming answer becomes an error status."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.cases import all_cases
from tests.contract import ProviderCase
from tests.helpers import API_KEY, SCRIPT_RULES, LiveServer, subprocess_server, threaded_server

CASES = all_cases()
LONG = [{"role": "user", "content": "long"}]  # a 400-word scripted answer


def _ending(case: ProviderCase, raw: str) -> str:
    """What the last event of a stream says about how the answer ended."""
    payloads, blocks = case.split_stream(raw)
    assert (blocks and case.ends_stream(blocks[-1].strip())) or case.name.startswith("dat1")
    if case.name.startswith("dat1"):
        last = [b for b in blocks if not b.startswith("data: [DONE]")][-1]
        assert last.startswith("error: "), last  # llama-server's mid-stream error line
        return str(json.loads(last[len("error: ") :])["type"])
    last_payload = payloads[-1]
    if case.name.split("-")[0] in ("openai", "e2e"):
        reasons = [c.get("finish_reason") for c in last_payload.get("choices") or []]
        return str(reasons[-1])  # vLLM's own ending for an aborted request
    if case.name == "aimlapi":
        assert last_payload["choices"][0]["finish_reason"] == "error"
        return str(last_payload["error"]["code"])
    if case.name == "dataoorts":
        assert last_payload["success"] is False
        return str(last_payload["errors"][0]["code"])
    if case.name == "oxen":
        assert last_payload["status"] == "error"
        return str(last_payload["error"]["type"])
    if case.name == "ollama":
        assert list(last_payload) == ["error"], last_payload  # Ollama's in-stream error line, no done object
        return str(last_payload["error"])
    if case.name.split("-")[0] == "responses":
        error, failed = payloads[-2:]
        assert error["type"] == "error" and failed["type"] == "response.failed", payloads[-2:]
        assert failed["response"]["status"] == "failed" and failed["response"]["error"]["code"] == error["code"]
        return str(error["code"])
    if case.name.split("-")[0] == "anthropic":
        assert last_payload["type"] == "error", last_payload  # an error event ends it, no message_stop
        return str(last_payload["error"]["type"])
    raise AssertionError(f"no expectation for {case.name}")


def _finish_reasons(case: ProviderCase, raw: str) -> list[str]:
    payloads, _ = case.split_stream(raw)
    reasons = [str(c["finish_reason"]) for p in payloads for c in p.get("choices") or [] if c.get("finish_reason")]
    return [*reasons, str(case.stream_finish_of(payloads))]


# the deadline (RequestTimeoutError) and the drain (EngineUnavailableError) as each route reports them
DEADLINE = {
    "openai": "abort",
    "e2e": "abort",
    "dat1": "timeout",
    "aimlapi": "timeout",
    "dataoorts": "3007",
    "oxen": "unknown_error",
    "responses": "server_error",
    "ollama": "The request took longer than 0.6 seconds and was stopped.",
    "anthropic": "timeout_error",
}
DRAIN = {
    "openai": "abort",
    "e2e": "abort",
    "dat1": "unavailable_error",
    "aimlapi": "service_unavailable",
    "dataoorts": "3050",
    "oxen": "unknown_error",
    "responses": "server_error",
    "ollama": "The server shut down before the answer was complete.",
    "anthropic": "overloaded_error",
}


def _expected(table: dict[str, str], case: ProviderCase) -> str:
    return table[case.name.split("-")[0]]


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.helpers import scripted_settings

    settings = scripted_settings(tmp_path_factory.mktemp("deadline"), token_delay_s=0.02)
    settings.limits.request_timeout_s = 0.6
    with threaded_server(settings) as live:
        yield live


def _post(live: LiveServer, case: ProviderCase, stream: bool) -> requests.Response:
    body = case.body(LONG, stream, {"max_tokens": 2000})
    return requests.post(live.base_url + case.chat_path, json=body, headers=case.auth_headers(API_KEY), timeout=60)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_stream_past_its_deadline_ends_truncated(slow_server: LiveServer, case: ProviderCase) -> None:
    r = _post(slow_server, case, stream=True)
    assert r.status_code == 200
    assert not {"stop", "length"} & set(_finish_reasons(case, r.text))
    assert _ending(case, r.text) == _expected(DEADLINE, case)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_non_streaming_answer_past_its_deadline_is_a_timeout_error(
    slow_server: LiveServer, case: ProviderCase
) -> None:
    case.check_error(_post(slow_server, case, stream=False), 408 if case.name == "dataoorts" else 504)


def test_streams_cut_by_the_drain_end_truncated_on_every_route(tmp_path: Path) -> None:
    """SIGTERM with streams running longer than the drain: every route's stream ends in its truncation form."""
    config = {
        "engine": {"kind": "scripted", "scripted": {"mode": "replay", "rules": SCRIPT_RULES, "token_delay_s": 0.02}},
        "harmony": {"conversation_start_date": "2026-01-15"},
        "server": {"drain_timeout_s": 0.5},
    }
    with subprocess_server(config, tmp_path, ready_timeout=120) as live:
        bodies: dict[str, str] = {}
        started = threading.Barrier(len(CASES) + 1)

        def read(case: ProviderCase) -> None:
            with requests.post(
                live.base_url + case.chat_path,
                json=case.body(LONG, True, {"max_tokens": 2000}),
                headers=case.auth_headers(API_KEY),
                stream=True,
                timeout=60,
            ) as r:
                chunks = r.iter_content(chunk_size=None)
                first = next(chunks).decode()
                started.wait(30)
                bodies[case.name] = first + "".join(c.decode() for c in chunks)

        threads = [threading.Thread(target=read, args=(c,)) for c in CASES]
        for t in threads:
            t.start()
        started.wait(30)
        assert live.process is not None
        live.process.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(60)
        assert live.process.wait(60) == 0
    for case in CASES:
        raw = bodies[case.name]
        assert not {"stop", "length"} & set(_finish_reasons(case, raw)), case.name
        assert _ending(case, raw) == _expected(DRAIN, case), case.name
