"""A real PostgreSQL server for the tests, in a temporary folder on a loopback port.

The binaries come from ``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``. PostgreSQL refuses to run as root,
so as root the server runs as the ``postgres`` system user. Without the binaries the tests that need one are
skipped, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

from tests import helpers
from tests.helpers import free_port

USER = "test"


def bindir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, newest version first; None when PostgreSQL is not installed."""
    candidates: list[str] = []
    if shutil.which("pg_config"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    return next((Path(c) for c in candidates if c and (Path(c) / "initdb").is_file()), None)


def unavailable(reason: str) -> NoReturn:
    helpers.unavailable("PostgreSQL", reason)


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], folder: Path) -> None:
    done = subprocess.run(_as_server_user(argv), cwd=folder, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        log = folder / "data" / "log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout}{done.stderr}{tail}")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throwaway server; yield its URL (user ``test``, database ``postgres``, no password)."""
    bin_dir = bindir()
    if bin_dir is None:
        unavailable("PostgreSQL binaries not found (pg_config --bindir, /usr/lib/postgresql/*/bin)")
    folder = Path(tempfile.mkdtemp(prefix="pg-test-"))  # not under pytest's folders, which the server user can't read
    data = folder / "data"
    if os.geteuid() == 0:
        try:
            shutil.chown(folder, "postgres", "postgres")
        except (LookupError, OSError) as exc:
            shutil.rmtree(folder)
            unavailable(f"running as root and no usable 'postgres' user: {exc}")
    port = free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    started = False
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "--no-locale", "-E", "UTF8"], folder)
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start"], folder)
        started = True
        yield f"postgresql://{USER}@127.0.0.1:{port}/postgres"
    finally:
        if started:
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], folder)
        shutil.rmtree(folder, ignore_errors=True)


def new_database(url: str) -> str:
    """A fresh empty database on the server at ``url``; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"
