"""The owner of the server's process tree.

``serve`` runs as a small supervising parent that starts the API server as its child, in a process group of its own.
vLLM's EngineCore and workers, and the render worker, are descendants of that child and stay in its group. Whatever
ends the child (a clean drain, a crash, the engine's death, kill -9), the supervisor then kills what is left of the
group and removes the shared-memory segments the tree had mapped, and exits with the child's status (non-zero for
anything but a clean shutdown), so an orchestrator restarts the service and nothing is left behind.

- SIGTERM/SIGINT to the supervisor are forwarded to the child, which drains; a second one, or a child that outlives
  its drain by ``GRACE_S``, gets the whole group killed.
- The child asks the kernel for SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``), so kill -9 of the
  supervisor still drains the child, which stops its engine and removes the segments its tree left.

This module imports nothing heavy: the supervisor never loads the web framework, harmony or vLLM.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("server.supervisor")

CHILD_ENV = "GPTOSS_SUPERVISED_CHILD"  # set in the child's environment: it serves instead of supervising
GRACE_S = 10.0  # after the drain timeout, before the group is killed
SCAN_INTERVAL_S = 1.0
SHM = Path("/dev/shm")
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        log.warning("prctl(%d) failed (errno %d)", option, ctypes.get_errno())


def is_child() -> bool:
    return os.environ.get(CHILD_ENV) == str(os.getppid())


def die_with_parent() -> None:
    """In the child: SIGTERM when the supervisor dies (Linux), and exit at once if it already has."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.environ.get(CHILD_ENV) != str(os.getppid()):  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def held_inodes() -> set[int]:
    """Inodes of the /dev/shm files some live process has mapped or open (every process's maps and fds).

    By inode, not name: glibc creates a POSIX semaphore under a temporary name, maps it, then links it to its real
    name, so a live ``sem.mp-...`` shows in the maps as ``/dev/shm/sem.XXXXXX (deleted)``."""
    held: set[int] = set()
    prefix = str(SHM) + "/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in (entry / "maps").read_text().splitlines():
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith(prefix):
                    held.add(int(fields[4]))
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd).startswith(prefix):
                        held.add(os.stat(fd).st_ino)
    return held


def remove_orphan_segments(since: float) -> list[Path]:
    """Remove the /dev/shm files (vLLM's shared-memory queues, multiprocessing's semaphores) created since ``since``
    that no live process holds: what a killed process tree leaves behind. A segment some process still has mapped or
    open (another server's included) is never touched."""
    if not SHM.is_dir():
        return []
    held = held_inodes()
    removed = []
    for path in SHM.iterdir():
        with contextlib.suppress(OSError):
            stat = path.stat()
            if path.is_file() and stat.st_mtime >= since - 1 and stat.st_ino not in held:
                path.unlink()
                removed.append(path)
    return removed


class Supervisor:
    def __init__(self, argv: list[str], drain_timeout_s: float) -> None:
        self.argv = argv
        self.drain_timeout_s = drain_timeout_s
        self.child: subprocess.Popen[bytes] | None = None
        self.started = time.time()
        self._stop_requested_at: float | None = None

    def _forward(self, signum: int, _frame: object) -> None:
        child = self.child
        if child is None or child.poll() is not None:
            return
        if self._stop_requested_at is not None:  # a second signal: stop now
            self._kill_group()
            return
        self._stop_requested_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM if signum == signal.SIGTERM else signal.SIGINT)

    def _kill_group(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.child.pid, signal.SIGKILL)

    def run(self) -> int:
        # Descendants whose parent dies are re-parented to the supervisor (not to init), so it can reap them: it
        # then knows when the tree is really gone (and, as a container's PID 1, leaves no zombies).
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
        env = {**os.environ, CHILD_ENV: str(os.getpid())}
        cmd = [sys.executable, "-m", "server", *self.argv]
        self.child = child = subprocess.Popen(cmd, env=env, start_new_session=True)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._forward)
        try:
            while child.poll() is None:
                stopping = self._stop_requested_at
                if stopping is not None and time.monotonic() - stopping > self.drain_timeout_s + GRACE_S:
                    log.error("the server outlived its drain; killing its process group")
                    self._kill_group()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(SCAN_INTERVAL_S)
        finally:
            code = self._clean_up(child)
        return code

    def _clean_up(self, child: subprocess.Popen[bytes]) -> int:
        code = child.wait()
        leftovers = group_members(child.pid)
        if leftovers:
            log.warning("killing %d process(es) the server left behind: %s", len(leftovers), leftovers)
            self._kill_group()
        reap_descendants(deadline=time.monotonic() + 5)
        for path in remove_orphan_segments(self.started):
            log.info("removed leftover shared memory %s", path)
        if code < 0:
            log.error("the server was killed by signal %d", -code)
            return 128 - code
        if code != 0:
            log.error("the server exited with status %d", code)
        return code


def reap_descendants(deadline: float) -> None:
    """Wait for every re-parented descendant to exit and reap it: a reaped process has released its memory maps, so
    the shared-memory segments it held can be told apart from live ones."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left
        if pid == 0:
            if time.monotonic() > deadline:
                log.warning("descendants still running after the group was killed")
                return
            time.sleep(0.02)


def supervise(argv: list[str], drain_timeout_s: float) -> int:
    """Run the server as a supervised child (see the module docstring); returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return Supervisor(argv, drain_timeout_s).run()
