"""Safe defaults an operator relies on: refusing an open address without keys, a busy port found before the engine
loads, docs off, 503 with Retry-After while loading, nothing reaching the network."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from server.errors import ConfigError
from server.preflight import check_auth_for_address, check_port_free, is_loopback
from server.settings import Settings
from tests.helpers import (
    API_KEY,
    REPO,
    SCRIPT_RULES,
    TINY_VLLM_ENGINE,
    free_port,
    scripted_settings,
    subprocess_server,
    threaded_server,
)


def test_loopback_names() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.1")


def test_an_open_address_without_keys_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPTOSS_API_KEYS", raising=False)
    with pytest.raises(ConfigError, match="without API keys"):
        check_auth_for_address(Settings(server={"host": "0.0.0.0"}))
    check_auth_for_address(Settings(server={"host": "0.0.0.0"}, auth={"allow_unauthenticated": True}))
    check_auth_for_address(Settings(server={"host": "127.0.0.1"}))
    monkeypatch.setenv("GPTOSS_API_KEYS", "sk-1")
    check_auth_for_address(Settings(server={"host": "0.0.0.0"}))


def test_the_cli_refuses_before_starting_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GPTOSS_API_KEYS"}
    r = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--config", "configs/scripted.yaml", "--host", "0.0.0.0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "without API keys" in r.stderr


def test_a_busy_port_is_reported_before_the_engine_loads() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=f"Cannot listen on 127.0.0.1:{port}"):
            check_port_free("127.0.0.1", port)
        r = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--config", "configs/cpu.yaml", "--port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2 and "Cannot listen" in r.stderr  # the CPU profile's engine never started
    check_port_free("127.0.0.1", free_port())


def test_docs_and_openapi_are_off_unless_enabled(tmp_path: Path) -> None:
    with threaded_server(scripted_settings(tmp_path)) as live:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert requests.get(live.base_url + path, timeout=10).status_code == 404
    settings = scripted_settings(tmp_path)
    settings.server.docs = True
    with threaded_server(settings) as live:
        assert requests.get(live.base_url + "/openapi.json", timeout=10).status_code == 200


def test_requests_while_loading_get_503_with_retry_after(tmp_path: Path) -> None:
    import asyncio
    import threading

    from server.engine.scripted import ScriptedEngine

    release = threading.Event()

    class SlowStart(ScriptedEngine):
        async def start(self) -> None:
            while not release.is_set():
                await asyncio.sleep(0.02)
            await super().start()

    settings = scripted_settings(tmp_path)
    with threaded_server(settings, SlowStart(settings.engine.scripted), wait=False) as live:
        try:
            body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(200):
                try:
                    r = requests.post(
                        live.base_url + "/v1/chat/completions",
                        json=body,
                        headers={"Authorization": f"Bearer {API_KEY}"},
                        timeout=10,
                    )
                    break
                except requests.ConnectionError:
                    import time

                    time.sleep(0.05)
            assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
            assert "loading" in r.json()["error"]["message"]
            d = requests.post(
                live.base_url + "/api/v1",
                json={"model": "openai/gpt-oss-120b", "data": {"messages": body["messages"]}},
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=10,
            )
            assert d.status_code == 503 and d.headers["Retry-After"] == "5" and d.json()["success"] is False
        finally:
            release.set()


AUDIT_HOOK = textwrap.dedent(
    """
    import os, sys

    _log = os.environ["GPTOSS_TEST_CONNECT_LOG"]

    def _hook(event, args):
        if event == "socket.connect":
            address = args[1]
        elif event == "socket.getaddrinfo":
            address = (args[0], args[1])  # a name looked up: about to contact it
        else:
            return
        with open(_log, "a") as f:
            f.write(f"{os.getpid()} {address!r}\\n")

    sys.addaudithook(_hook)
    """
)


ENGINES = [
    pytest.param({"kind": "scripted", "scripted": {"mode": "replay", "rules": SCRIPT_RULES}}, id="scripted"),
    pytest.param(
        TINY_VLLM_ENGINE,
        id="vllm",
        marks=pytest.mark.engine,
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
def test_nothing_but_loopback_is_contacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: dict) -> None:  # type: ignore[type-arg]
    """Every Python process of the server's tree (supervisor, API server, vLLM's engine core and workers) logs each
    socket connect and name lookup (an audit hook loaded via sitecustomize); starting, serving a request and
    shutting down contact only loopback addresses and local sockets (vLLM's usage stats and the hub stay off)."""
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp_path / "connects.log"
    log.touch()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook_dir), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("GPTOSS_TEST_CONNECT_LOG", str(log))
    with subprocess_server({"engine": engine}, tmp_path) as live:
        r = requests.post(
            live.base_url + "/v1/chat/completions",
            json={"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "reason"}], "max_tokens": 8},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )
        assert r.status_code == 200
    lines = log.read_text().splitlines()
    outside = [line for line in lines if not _local(line.split(" ", 1)[1])]
    assert not outside, outside


def _local(address: str) -> bool:
    """A loopback (host, port) tuple, or a unix-socket path."""
    import ast

    value = ast.literal_eval(address)
    if isinstance(value, str | bytes):
        return True  # AF_UNIX
    host = value[0].decode() if isinstance(value[0], bytes) else str(value[0])
    return host in ("", "None") or is_loopback(host)
