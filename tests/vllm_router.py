"""vllm-router (the ``test`` extra pins it) as a real process in front of test replicas.

Its program comes with the Python package, next to this interpreter. Without it the tests that need it are skipped,
except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tests import helpers
from tests.helpers import child_process, free_port, wait_answering


def unavailable(reason: str) -> NoReturn:
    helpers.unavailable("vllm-router", reason)


def router_binary() -> str:
    beside = Path(sys.executable).parent / "vllm-router"
    found = str(beside) if beside.is_file() else shutil.which("vllm-router")
    if found is None:
        unavailable("vllm-router is not installed (pip install '.[test]')")
    return found


@dataclass
class Router:
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def vllm_router(folder: Path, workers: list[str], *options: str) -> Iterator[Router]:
    """``vllm-router --worker-urls WORKERS OPTIONS`` on a free loopback port (its metrics on another), health
    checked each second on ``/health`` and ejecting a worker at its first failed check."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        router_binary(),
        *("--host", "127.0.0.1", "--port", str(port), "--worker-urls", *workers),
        *("--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port())),
        *("--health-check-endpoint", "/health", "--health-check-interval-secs", "1"),
        *("--health-failure-threshold", "1", "--worker-startup-timeout-secs", "60", "--log-level", "info"),
        *options,
    ]
    log_path = folder / "router.log"
    with child_process(argv, log_path, env={**os.environ, "NO_COLOR": "1"}) as process:
        router = Router(f"http://127.0.0.1:{port}", log_path, process)
        wait_answering(
            process,
            router.base_url + "/readiness",
            name="vllm-router",
            timeout=90,
            interval=0.2,
            log=router.log_text,
            ready=lambda response: response.status_code == 200,
        )
        yield router
