"""Several API server processes on one port (``server.api_processes: N``).

The serving process becomes a launcher: it holds the port (bound, not listening) while each API process listens on
its own ``SO_REUSEPORT`` socket of the same port, so the kernel spreads connections over them; and
- with the vLLM engine, launches the engine core(s) once and N API processes that are each an engine client of the
  shared cores, by vLLM's own multi-API-server machinery (``serve_api_processes`` in the vLLM engine module);
- with the scripted engine, starts N API processes that each run their own scripted engine (the front end's ceiling).

Every API process is the ordinary app (``create_app`` + ``build_server``): it drains on SIGTERM, aborts a
disconnected client's engine request through its own engine client, answers ``/health`` from its own view of the
engine, and writes its metrics to a shared Prometheus multiprocess folder, so ``/metrics`` from any of them is the
sum over all. The launcher forwards SIGTERM/SIGINT to the API processes, waits for their drains, then stops the
engine; if any process dies, it stops the rest and exits with status 1 (an orchestrator restarts the whole tree, as
after an engine failure).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from server.settings import Settings

log = logging.getLogger(__name__)

PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
PROCESS_INDEX_ENV = "GPTOSS_API_PROCESS"
STOP_GRACE_S = 10.0  # beyond the drain: uvicorn's own shutdown, the engine client's


def bound_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A socket on ``host:port`` that other processes of this user may bind too (``SO_REUSEPORT``): the kernel then
    spreads new connections over the listening ones."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    return sock


def process_index() -> int | None:
    """This API process's index among several (None in a single-process server)."""
    value = os.environ.get(PROCESS_INDEX_ENV)
    return int(value) if value is not None else None


def serve_processes(settings: Settings, argv: list[str]) -> int:
    """Run ``settings.server.api_processes`` API processes on one port until SIGTERM/SIGINT; returns the exit status."""
    count = settings.server.api_processes
    metrics_dir = Path(tempfile.mkdtemp(prefix="gptoss-metrics-"))
    os.environ[PROMETHEUS_DIR_ENV] = str(metrics_dir)  # before any process of the tree imports prometheus_client
    stop_timeout = settings.server.drain_timeout_s + STOP_GRACE_S
    host = settings.server.host
    reserved = bound_socket(host, settings.server.port, listen=False)  # the port is ours before the engine starts
    address = f"{host}:{reserved.getsockname()[1]}"
    from server.supervisor import CHILD_ENV

    os.environ[CHILD_ENV] = str(os.getpid())  # the API processes are this process's children (die_with_parent)

    def stop(signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        log.info("signal %d: draining %d API processes", signum, count)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("starting %d API processes on %s:%d", count, settings.server.host, settings.server.port)
    try:
        if settings.engine.kind == "vllm":
            from server.engine.factory import resolve_model_path
            from server.engine.vllm_engine import serve_api_processes

            model = resolve_model_path(settings)
            served = settings.engine.served_model_name
            return serve_api_processes(
                settings.engine.vllm, model, served, count, api_process, address, argv, stop_timeout
            )
        return _serve_own_engines(count, address, argv, stop_timeout)
    finally:
        reserved.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve_own_engines(count: int, address: str, argv: list[str], stop_timeout: float) -> int:
    """N API processes, each with its own (scripted) engine; the first to die stops the rest."""
    spawn = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    status = 0
    try:
        for index in range(count):
            config = {"client_count": count, "client_index": index}
            process = spawn.Process(target=api_process, args=(address, None, argv, config), name=f"ApiServer_{index}")
            process.start()
            processes.append(process)
        from multiprocessing.connection import wait

        pending = {p.sentinel: p for p in processes}
        while pending:
            for sentinel in wait(list(pending)):
                process = pending.pop(sentinel)  # type: ignore[call-overload]
                if process.exitcode != 0:
                    log.error("API process %s (pid %s) exited with %s", process.name, process.pid, process.exitcode)
                    status = 1
                    raise SystemExit(1)
    except SystemExit:
        pass
    finally:
        _stop_all(processes, stop_timeout)
    return status


def _stop_all(processes: list[BaseProcess], timeout: float) -> None:
    for process in processes:
        if process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                process.terminate()  # SIGTERM: the API process drains
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.warning("API process %s outlived its drain; killing it", process.name)
            process.kill()
            process.join(5)


def api_process(address: str, _sock: object, argv: list[str], client: dict[str, Any]) -> None:
    """One API process (spawned): the ordinary server on its own socket of the shared ``address`` (``host:port``), its
    engine a client of the launcher's engine cores (vLLM) or its own (scripted). The launcher's ``argv`` rebuilds the
    very same settings."""
    from server.cli import parser, print_banner, settings_for
    from server.supervisor import die_with_parent

    die_with_parent()
    index = int(client["client_index"])
    os.environ[PROCESS_INDEX_ENV] = str(index)
    args = parser().parse_args(argv)
    settings = settings_for(args)
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format=f"%(asctime)s %(levelname)s [api {index}] %(name)s: %(message)s",
    )
    from server.app import create_app
    from server.engine.base import Engine
    from server.http.server import build_server

    engine: Engine | None = None
    if settings.engine.kind == "vllm":
        from server.engine.factory import resolve_model_path
        from server.engine.vllm_engine import VllmEngine

        served = settings.engine.served_model_name
        engine = VllmEngine(settings.engine.vllm, resolve_model_path(settings), served, client)
    app = create_app(settings, engine)
    if index == 0:
        print_banner(app, args)
    host, port = address.rsplit(":", 1)
    build_server(app).run(sockets=[bound_socket(host, int(port), listen=True)])
    sys.exit(app.state.ctx.exit_code or 0)
