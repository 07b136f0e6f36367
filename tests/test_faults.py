"""Faults with the real engine: SIGTERM during a stream, kill -9 of each process of the server's tree, a failed
engine start. After each: the exit status an orchestrator needs, a proper ending for in-flight clients, and no
process of the tree and no shared-memory segment left behind (server/supervisor.py owns the tree)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from server.supervisor import SHM, group_members, held_inodes
from tests.helpers import API_KEY, PINNED_DATE, TINY_VLLM_ENGINE, LiveServer, subprocess_server

pytestmark = pytest.mark.engine

CONFIG: dict[str, Any] = {
    "engine": TINY_VLLM_ENGINE,
    "harmony": {"conversation_start_date": PINNED_DATE},
    "server": {"drain_timeout_s": 1.0},
}
BODY = {
    "model": "gpt-oss-120b",
    "messages": [{"role": "user", "content": "Write a long story."}],
    "max_tokens": 1500,
    "ignore_eos": True,
    "stream": True,
}
SETTLE_S = 30.0  # how long the tree may take to disappear (the target is 10 s; the figure is printed)


def tree_of(supervisor: int) -> tuple[int, list[int]]:
    """The API server (the supervisor's child) and every process in its group: engine core, workers, render worker."""
    children = [int(p) for p in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()]
    assert len(children) == 1, children
    return children[0], group_members(children[0])


def title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_gone(pids: list[int], pgid: int) -> float:
    """Seconds until none of ``pids`` and nothing of group ``pgid`` is alive (fails after SETTLE_S)."""
    started = time.monotonic()
    while time.monotonic() - started < SETTLE_S:
        if not [p for p in pids if running(p)] and not group_members(pgid):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"still alive after {SETTLE_S}s: {[title(p) for p in pids if running(p)]}")


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None  # gone meanwhile


def shm_now() -> set[str]:
    return {p.name for p in SHM.iterdir()} if SHM.exists() else set()


class Stream:
    """A streamed chat request read in a thread: its raw body, once the connection ends."""

    def __init__(self, live: LiveServer) -> None:
        self.body = ""
        self.first = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(live,), daemon=True)
        self.thread.start()
        assert self.first.wait(120), "no first event"

    def _read(self, live: LiveServer) -> None:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        try:
            with requests.post(
                live.base_url + "/v1/chat/completions", json=BODY, headers=headers, stream=True, timeout=120
            ) as r:
                for chunk in r.iter_content(chunk_size=None):
                    self.body += chunk.decode()
                    self.first.set()
        except requests.RequestException as exc:
            self.body += f"\n<connection error: {exc.__class__.__name__}>"
        finally:
            self.first.set()

    def result(self) -> str:
        self.thread.join(60)
        return self.body


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[LiveServer, set[str]]]:
    before = shm_now()
    with subprocess_server(CONFIG, tmp_path) as live:
        yield live, before


def _after(live: LiveServer, before: set[str], pids: list[int], pgid: int) -> None:
    settle = wait_gone(pids, pgid)
    # left behind = new, and held by no live process (the killed tree is gone; a segment another program on this
    # machine made meanwhile is mapped by it)
    held = held_inodes()
    leaked = {name for name in shm_now() - before if (inode := _inode(SHM / name)) is not None and inode not in held}
    print(f"tree gone {settle:.1f}s after the fault; shm left: {sorted(leaked)}")
    assert not leaked, leaked


def test_sigterm_drains_the_stream_and_leaves_nothing(server: tuple[LiveServer, set[str]]) -> None:
    live, before = server
    assert live.process is not None
    child, group = tree_of(live.process.pid)
    assert len(group) >= 2, [title(p) for p in group]  # the API server and at least the engine core
    stream = Stream(live)
    started = time.monotonic()
    live.process.send_signal(signal.SIGTERM)
    assert live.process.wait(60) == 0
    print(f"SIGTERM to exit: {time.monotonic() - started:.1f}s (drain timeout 1 s)")
    body = stream.result()
    assert '"finish_reason":"abort"' in body and body.endswith("data: [DONE]\n\n"), body[-400:]
    _after(live, before, [live.process.pid, *group], child)


@pytest.mark.parametrize("victim", ["supervisor", "api-server", "engine-core", "worker"])
def test_kill_9_leaves_nothing_behind(server: tuple[LiveServer, set[str]], victim: str) -> None:
    live, before = server
    assert live.process is not None
    child, group = tree_of(live.process.pid)
    others = [p for p in group if p != child]
    engine_core = [p for p in others if "EngineCore" in title(p)]
    workers = [p for p in others if "Worker" in title(p)]
    targets = {
        "supervisor": [live.process.pid],
        "api-server": [child],
        "engine-core": engine_core,
        "worker": workers,
    }[victim]
    if not targets:
        pytest.skip(f"no {victim} process in this tree: {[title(p) for p in group]}")
    stream = Stream(live)
    started = time.monotonic()
    os.kill(targets[0], signal.SIGKILL)
    code = live.process.wait(60)  # the supervisor's status (-9 when it was the victim)
    print(f"{victim} killed: supervisor exited {code} after {time.monotonic() - started:.1f}s")
    assert code != 0
    body = stream.result()
    if victim in ("engine-core", "worker"):  # the API server lived to end the stream with an error event
        assert '"error"' in body and body.endswith("data: [DONE]\n\n"), body[-400:]
    _after(live, before, [live.process.pid, *group], child)


def test_a_failed_engine_start_exits_non_zero(tmp_path: Path) -> None:
    config = {
        **CONFIG,
        "engine": {"kind": "vllm", "vllm": {**CONFIG["engine"]["vllm"], "model": str(tmp_path / "missing")}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    process = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--config", str(path), "--port", "0"],
        capture_output=True,
        timeout=300,
        env={**os.environ, "GPTOSS_API_KEYS": API_KEY},
    )
    assert process.returncode == 1, process.stderr.decode()[-2000:]
    assert b"engine failed to start" in process.stderr
