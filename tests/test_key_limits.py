"""Named API keys: the name (never the key) in logs and metrics, and per-key concurrency and tokens-per-minute limits
answered with 429 and Retry-After in each route's envelope."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest
import requests

from server.keys import KeyStore
from server.settings import KeyLimits
from tests.helpers import scripted_settings, threaded_server

ALICE, BOB = "sk-alice-0123456789", "sk-bob-9876543210"


def test_names_come_from_the_file_or_the_order() -> None:
    store = KeyStore(["alice:" + ALICE, BOB])
    assert store.names == ["alice", "key-2"]
    assert store.identify(ALICE) == "alice" and store.identify(BOB) == "key-2"
    assert store.identify("alice:" + ALICE) is None and store.identify("sk-nope") is None and store.identify("") is None


@pytest.fixture
def keyed(tmp_path: Path) -> object:
    settings = scripted_settings(tmp_path, token_delay_s=0.01)
    (tmp_path / "keys.txt").write_text(f"alice:{ALICE}\nbob:{BOB}\n")
    settings.auth.key_limits = {
        "alice": KeyLimits(max_concurrent_requests=1),
        "bob": KeyLimits(tokens_per_minute=300),
    }
    with threaded_server(settings) as live:
        yield live


def _chat(base: str, key: str, content: str = "hi", **extra: object) -> requests.Response:
    body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": content}], **extra}
    return requests.post(
        base + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def test_per_key_concurrency(keyed: object, caplog: pytest.LogCaptureFixture) -> None:
    base = keyed.base_url  # type: ignore[attr-defined]
    body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "long"}], "stream": True}
    with (
        httpx.Client(timeout=60) as http,
        http.stream(
            "POST", base + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer " + ALICE}
        ) as first,
    ):
        lines = first.iter_lines()  # kept: a dropped iterator closes the stream
        next(lines)
        second = _chat(base, ALICE)
        assert second.status_code == 429 and second.headers["Retry-After"] == "1"
        assert "alice" in second.json()["error"]["message"] and ALICE not in second.text
        d = requests.post(
            base + "/api/v1",
            json={"model": "openai/gpt-oss-120b", "data": {"messages": [{"role": "user", "content": "x"}]}},
            headers={"Authorization": f"Bearer {ALICE}"},
            timeout=30,
        )
        assert d.status_code == 429 and d.json()["success"] is False  # in Dataoorts' envelope
        assert _chat(base, BOB).status_code == 200  # another key is not held back
    with caplog.at_level(logging.INFO, logger="server.requests"):
        assert _chat(base, ALICE).status_code == 200  # the slot is free again
        for _ in range(300):
            if any('key="alice"' in r.getMessage() for r in caplog.records):
                break
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "server.requests"]
    assert any('key="alice"' in line for line in lines) and not any(ALICE in line for line in lines)


def test_per_key_tokens_per_minute(keyed: object) -> None:
    base = keyed.base_url  # type: ignore[attr-defined]
    spent = 0
    for _ in range(10):
        r = _chat(base, BOB, "hello " * 20)
        if r.status_code == 429:
            break
        assert r.status_code == 200, r.text
        spent += r.json()["usage"]["total_tokens"]
    assert r.status_code == 429, "the 300 tokens per minute never ran out"
    assert spent <= 300 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert "tokens per minute" in r.json()["error"]["message"]
    assert _chat(base, ALICE, "hello " * 20).status_code == 200  # alice has no token limit


def test_keys_loaded_count_only(keyed: object) -> None:
    ctx = keyed.app.state.ctx  # type: ignore[attr-defined]
    assert len(ctx.keys) == 2 and ctx.keys.names == ["alice", "bob"]
