"""Start this server in a thread on a free loopback port, with the scripted engine, for a client's tests.

``OfflineConfig`` says what the engine answers: a transcript (script rules: a list of rule mappings, YAML text, or
the path of a YAML file), a recording folder (``serve --record``), or neither (each answer echoes the last user
message). A fault plan (a list of rule mappings) is passed on as ``testing.faults`` with ``testing.faults_enabled``.
``settings`` holds further overrides of the settings tree (nested mappings, as in the YAML file).
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from server.errors import ConfigError

API_KEY = "sk-offline-0123456789abcdef"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class OfflineConfig:
    transcript: list[dict[str, Any]] | str | Path | None = None
    recording: str | Path | None = None
    faults: list[dict[str, Any]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    api_key: str = API_KEY


@dataclass(frozen=True)
class OfflineServer:
    base_url: str  # http://127.0.0.1:PORT
    api_key: str
    urls: dict[str, str]  # wire API name -> the base URL its client library takes
    prefixes: dict[str, tuple[str, ...]]  # wire API name -> the URLs of the path prefixes it owns


def script_section(config: OfflineConfig) -> dict[str, Any]:
    """``engine.scripted`` for ``config``."""
    if config.recording is not None:
        return {"mode": "recording", "recording_dir": str(config.recording)}
    transcript = config.transcript
    if transcript is None:
        return {"mode": "echo"}
    if isinstance(transcript, Path):
        return {"mode": "replay", "rules_file": str(transcript)}
    if isinstance(transcript, str):
        loaded = yaml.safe_load(transcript)
        transcript = loaded.get("rules", loaded) if isinstance(loaded, dict) else loaded
        if not isinstance(transcript, list):
            raise ConfigError("A transcript in YAML must hold a list of rules (or a mapping with a `rules` list).")
    return {"mode": "replay", "rules": transcript}


def overrides(config: OfflineConfig, folder: Path) -> dict[str, Any]:
    """The settings tree for ``config``: the scripted engine, one API key, state kept in ``folder``."""
    from server.settings import _deep_merge

    folder.mkdir(parents=True, exist_ok=True)
    keys, seal = folder / "keys.txt", folder / "seal.key"
    keys.write_text(config.api_key + "\n")
    seal.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    tree: dict[str, Any] = {
        "engine": {"kind": "scripted", "scripted": script_section(config)},
        "auth": {"api_keys_env": "GPTOSS_OFFLINE_UNUSED_KEYS", "api_keys_file": str(keys)},
        "store": {"url": "memory", "seal_key_file": str(seal)},
        "server": {"log_level": "warning", "supervise": False},
    }
    if config.faults is not None:
        tree["testing"] = {"faults_enabled": True, "faults": list(config.faults)}
    return _deep_merge(tree, config.settings)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(config: OfflineConfig, folder: Path) -> Iterator[OfflineServer]:
    """The server for ``config``, ready, until the block ends."""
    from routes import WIRE_APIS
    from server.app import create_app
    from server.http.server import build_server
    from server.settings import Settings, _deep_merge

    port = free_port()
    tree = _deep_merge(overrides(config, folder), {"server": {"host": "127.0.0.1", "port": port}})
    try:
        settings = Settings(**tree)
    except ValueError as exc:
        raise ConfigError(f"Invalid offline server settings: {exc}") from exc
    app = create_app(settings)
    server = build_server(app)
    thread = threading.Thread(target=server.run, name="offline-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, thread)
        ctx = app.state.ctx
        enabled = [p for p in WIRE_APIS if p.enabled(ctx)]
        yield OfflineServer(
            base_url=base,
            api_key=config.api_key,
            urls={p.name: base + p.sdk_base(ctx) for p in enabled},
            prefixes={p.name: tuple(base + prefix for prefix in p.http_side().prefixes(ctx)) for p in enabled},
        )
    finally:
        server.should_exit = True
        thread.join(30)


def wait_ready(base_url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError(f"the offline server at {base_url} stopped while starting")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{base_url}/health", timeout=5) as answer:
            if answer.status == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"the offline server at {base_url} was not ready after {READY_TIMEOUT_S:g}s")
