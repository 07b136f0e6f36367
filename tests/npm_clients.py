"""Client programs from npm, installed once per pinned version into the cache folder.

``npm_binary("@openai/codex", "0.169.0", "codex")`` installs the package into
``<cache root>/npm/openai-codex-0.169.0`` (``npm install --prefix``) the first time and returns the path of its
``node_modules/.bin`` program; ``npm_package("openai", "6.49.0")`` installs a library the same way and returns its
``node_modules`` folder (for ``NODE_PATH``). Later runs, and other processes racing for the same version (a file
lock), find it ready by its stamp file. Without ``npm``/``node`` the tests that need one are skipped, except in CI
(``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from server.paths import cache_root

INSTALL_TIMEOUT_S = 600
STAMP = ".installed"


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"npm clients are needed in CI: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def install_folder(package: str, version: str, root: Path | None = None) -> Path:
    """Where one version of a package lives: ``<root>/openai-codex-0.169.0`` for ``@openai/codex``."""
    name = package.lstrip("@").replace("/", "-")
    return (root if root is not None else cache_root() / "npm") / f"{name}-{version}"


def npm_binary(package: str, version: str, binary: str, root: Path | None = None) -> Path:
    """The program ``binary`` of ``package@version``, installed first if needed (``root``: instead of the cache)."""
    return _installed(package, version, Path("node_modules") / ".bin" / binary, root)


def npm_package(package: str, version: str, root: Path | None = None) -> Path:
    """The ``node_modules`` folder holding ``package@version`` (a library), installed first if needed."""
    _installed(package, version, Path("node_modules") / package / "package.json", root)
    return install_folder(package, version, root) / "node_modules"


def _installed(package: str, version: str, marker: Path, root: Path | None) -> Path:
    """``marker`` (a path inside the install folder) once ``package@version`` is installed there."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        unavailable(f"{package} needs node and npm on PATH (found node={node}, npm={npm})")
    folder = install_folder(package, version, root)
    stamp, program = folder / STAMP, folder / marker
    spec = f"{package}@{version}"
    if stamp.is_file() and stamp.read_text().strip() == spec and program.exists():
        return program
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.parent / f"{folder.name}.lock"):
        if stamp.is_file() and stamp.read_text().strip() == spec and program.exists():
            return program  # another process installed it meanwhile
        folder.mkdir(exist_ok=True)
        stamp.unlink(missing_ok=True)
        options = ["--no-audit", "--no-fund", "--save-exact", "--loglevel=error"]
        argv = [npm, "install", "--prefix", str(folder), *options, spec]
        env = {**os.environ, "npm_config_update_notifier": "false"}
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm install {spec} took more than {INSTALL_TIMEOUT_S}s")
        if done.returncode != 0 or not program.exists():
            pytest.fail(f"npm install {spec} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        stamp.write_text(spec + "\n")
    return program
