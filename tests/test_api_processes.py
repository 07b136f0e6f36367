"""Several API processes on one port (``server.api_processes``): requests spread over them, metrics summed, SIGTERM
drains all, a crash of one stops the tree; with the real engine, one engine core shared by both, and a disconnect in
either aborts its engine request."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.supervisor import group_members
from tests.helpers import API_KEY, TINY_VLLM_ENGINE, LiveServer, subprocess_server

HEADERS = {"Authorization": f"Bearer {API_KEY}"}
CHAT = "/v1/chat/completions"


def body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-oss-120b", "messages": [{"role": "user", "content": text}], **extra}


def served_by(live: LiveServer) -> list[int]:
    """The API process index of each request logged so far."""
    return [int(m) for m in re.findall(r"server\.requests: request .* process=(\d+)", live.log_text())]


def api_pids(live: LiveServer) -> set[int]:
    return {int(pid) for pid in re.findall(r"Started server process \[(\d+)\]", live.log_text())}


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def all_ready(live: LiveServer, count: int) -> bool:
    """Both processes listen and serve (each /health is a new connection, spread by the kernel)."""
    statuses = []
    for _ in range(12):
        try:
            statuses.append(httpx.get(live.base_url + "/health", timeout=5).status_code)
        except httpx.HTTPError:
            return False
    return len(api_pids(live)) == count and all(s == 200 for s in statuses)


def spread(live: LiveServer, requests: int) -> None:
    """``requests`` chats at once, each on its own connection, until both processes have served some."""

    def one(i: int) -> int:
        return httpx.post(live.base_url + CHAT, json=body(f"hello {i}"), headers=HEADERS, timeout=60).status_code

    for _ in range(5):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(one, range(requests))) == {200}
        if set(served_by(live)) == {0, 1}:
            return
    raise AssertionError(f"one process served everything: {served_by(live)}")


def requests_total(live: LiveServer) -> float:
    text = httpx.get(live.base_url + "/metrics", timeout=10).text
    return sum(float(v) for v in re.findall(r'^gptoss:requests_total\{api="openai".*status="200"\} (\S+)$', text, re.M))


def assert_tree_gone(live: LiveServer) -> None:
    assert live.process is not None
    wait_for(lambda: not group_members(live.process.pid), 30, "the process group to be gone")  # type: ignore[union-attr]


@pytest.fixture
def scripted_pair(tmp_path: Path) -> Iterator[LiveServer]:
    config = {
        "server": {"api_processes": 2, "drain_timeout_s": 20},
        "engine": {"kind": "scripted", "scripted": {"token_delay_s": 0.02}},
    }
    with subprocess_server(config, tmp_path, ready_timeout=120) as live:
        wait_for(lambda: all_ready(live, 2), 60, "both API processes")
        yield live


def test_requests_spread_over_both_processes_and_metrics_are_summed(scripted_pair: LiveServer) -> None:
    live = scripted_pair
    spread(live, 16)
    served = len(served_by(live))
    totals = {requests_total(live) for _ in range(8)}  # scraped from either process: the same sum
    assert totals == {float(served)}


def test_sigterm_drains_both_processes(scripted_pair: LiveServer) -> None:
    live = scripted_pair
    assert live.process is not None
    long = body("x " * 100, stream=True)  # ~100 tokens at 20 ms each
    url = live.base_url + CHAT
    with httpx.Client(timeout=60) as client, client.stream("POST", url, json=long, headers=HEADERS) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
        live.process.send_signal(signal.SIGTERM)
        rest = [line for line in lines if line]
    assert rest[-1] == "data: [DONE]"  # the stream in flight finished during the drain
    assert json.loads(rest[-2].removeprefix("data: "))["choices"][0]["finish_reason"] == "stop"
    assert live.process.wait(60) == 0
    assert_tree_gone(live)


def test_a_crashed_api_process_stops_the_tree(scripted_pair: LiveServer) -> None:
    live = scripted_pair
    assert live.process is not None
    victim = sorted(api_pids(live))[0]
    os.kill(victim, signal.SIGKILL)
    assert live.process.wait(60) == 1  # an orchestrator restarts it, as after an engine failure
    assert_tree_gone(live)
    assert "exited with -9" in live.log_text()


# ---- the real engine --------------------------------------------------------------------------------------------


def engine_cores(live: LiveServer) -> set[str]:
    return set(re.findall(r"\((EngineCore\w*) pid=(\d+)\)", live.log_text()))


@pytest.mark.engine
def test_two_api_processes_share_one_engine_core(tmp_path: Path) -> None:
    config = {
        "server": {"api_processes": 2, "drain_timeout_s": 10},
        "engine": TINY_VLLM_ENGINE,
        "limits": {"default_max_tokens": 16},
    }
    with subprocess_server(config, tmp_path) as live:
        wait_for(lambda: all_ready(live, 2), 300, "both API processes")
        spread(live, 8)
        assert len({pid for _, pid in engine_cores(live)}) == 1  # one engine core for both
        # a disconnect in either process aborts its engine request: stream, drop, and every process reports none left
        long = body("count", stream=True, max_tokens=1500, ignore_eos=True, temperature=0)
        for _ in range(4):  # new connections: both processes get some
            with httpx.Client(timeout=60) as client, client.stream("POST", live.base_url + CHAT, json=long) as r:
                next(r.iter_lines())

        def none_running() -> bool:
            return all(live.health().get("engine_requests") == 0 for _ in range(10))

        wait_for(none_running, 30, "the engine requests of the dropped streams to be aborted")
        assert "vllm:num_requests_running" in httpx.get(live.base_url + "/metrics", timeout=10).text
        assert live.process is not None
        live.process.send_signal(signal.SIGTERM)
        assert live.process.wait(90) == 0
        assert_tree_gone(live)


def test_the_race_finds_the_api_processes_alone(scripted_pair: LiveServer) -> None:
    """scripts/race.py counts the CPU of the processes listening on the port: the two API processes, not the
    supervisor or the launcher."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import race

    live = scripted_pair
    assert live.process is not None
    port = int(live.base_url.rsplit(":", 1)[1])
    found = race.api_processes(live.process.pid, port)
    assert {p.pid for p in found} == api_pids(live)
    assert race.api_cpu_seconds(found) > 0
