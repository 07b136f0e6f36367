"""The supervisor owns the process tree (scripted engine, real processes): its exit status follows the child's, it
forwards signals, and it removes only the shared-memory segments nobody holds."""

from __future__ import annotations

import mmap
import os
import signal
import time
from pathlib import Path

import pytest

from server.supervisor import SHM, group_members, remove_orphan_segments
from tests.helpers import SCRIPT_RULES, subprocess_server

CONFIG = {
    "engine": {"kind": "scripted", "scripted": {"mode": "replay", "rules": SCRIPT_RULES}},
    "server": {"drain_timeout_s": 0.5},
}


def _child(supervisor: int) -> int:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_kill_9_of_the_api_server_makes_the_supervisor_exit_non_zero(tmp_path: Path) -> None:
    with subprocess_server(CONFIG, tmp_path, ready_timeout=120) as live:
        assert live.process is not None
        child = _child(live.process.pid)
        os.kill(child, signal.SIGKILL)
        assert live.process.wait(30) == 128 + signal.SIGKILL
        assert not group_members(child)


def test_sigterm_is_forwarded_and_the_exit_is_clean(tmp_path: Path) -> None:
    with subprocess_server(CONFIG, tmp_path, ready_timeout=120) as live:
        assert live.process is not None
        child = _child(live.process.pid)
        live.process.send_signal(signal.SIGTERM)
        assert live.process.wait(30) == 0
        assert not group_members(child)


def test_kill_9_of_the_supervisor_stops_the_child(tmp_path: Path) -> None:
    with subprocess_server(CONFIG, tmp_path, ready_timeout=120) as live:
        assert live.process is not None
        child = _child(live.process.pid)
        os.kill(live.process.pid, signal.SIGKILL)
        live.process.wait(30)
        deadline = time.monotonic() + 30
        while group_members(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not group_members(child)  # the parent-death signal drained and ended it


@pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm on this system")
def test_only_segments_nobody_holds_are_removed() -> None:
    started = time.time()
    orphan = SHM / f"gptoss-test-orphan-{os.getpid()}"
    held = SHM / f"gptoss-test-held-{os.getpid()}"
    orphan.write_bytes(b"x" * 4096)
    held.write_bytes(b"x" * 4096)
    with held.open("r+b") as f, mmap.mmap(f.fileno(), 4096):
        try:
            removed = remove_orphan_segments(started)
            assert orphan in removed and not orphan.exists()
            assert held.exists() and held not in removed
        finally:
            orphan.unlink(missing_ok=True)
    held.unlink()


@pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm on this system")
def test_a_segment_mapped_under_its_temporary_name_is_kept() -> None:
    """As glibc makes a semaphore: created under a temporary name, mapped, linked to its real name, the temporary
    name removed. The process's maps show only the (deleted) temporary name; the real one must still be kept."""
    started = time.time()
    temporary = SHM / f"gptoss-test-tmp-{os.getpid()}"
    final = SHM / f"gptoss-test-sem-{os.getpid()}"
    temporary.write_bytes(b"x" * 4096)
    with temporary.open("r+b") as f:
        mapping = mmap.mmap(f.fileno(), 4096)  # stays mapped once the file is closed, as sem_open leaves it
    try:
        os.link(temporary, final)
        temporary.unlink()
        assert final not in remove_orphan_segments(started) and final.exists()
    finally:
        mapping.close()
        final.unlink(missing_ok=True)
        temporary.unlink(missing_ok=True)
