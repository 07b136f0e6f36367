"""nginx from Debian's packages, running the shipped recipe (``deploy/nginx/gptoss.conf``) in front of test replicas.

``nginx_binary()`` finds ``nginx`` (PATH, ``/usr/sbin``); when it is missing and the tests run as root with
``apt-get`` (as CI does), it installs the ``nginx`` package first (about 15 s with the package lists fetched).
Otherwise the tests that need it are skipped, except in CI (``CI`` set), where they fail.

``nginx_proxy()`` runs the recipe unchanged but for its replica ``server`` lines and its ``listen`` port, inside a
main configuration whose pid file, logs and temporary folders live in the test's folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from tests import helpers
from tests.helpers import REPO, child_process, free_port, wait_answering

RECIPE = REPO / "deploy" / "nginx" / "gptoss.conf"
INSTALL_TIMEOUT_S = 600
SERVER_LINE = re.compile(r"^(\s*)server \S+:\d+ (.*);$", re.MULTILINE)
LISTEN_LINE = re.compile(r"^(\s*)listen \d+;$", re.MULTILINE)


def unavailable(reason: str) -> NoReturn:
    helpers.unavailable("nginx", reason)


def _find() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def nginx_binary() -> str:
    """The nginx program, installed from Debian's packages first where that is possible (root, apt-get)."""
    found = _find()
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        unavailable("nginx is not installed (apt-get install nginx)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=300", "--no-install-recommends", "nginx"],
    ):
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            unavailable(f"{' '.join(argv)} took more than {INSTALL_TIMEOUT_S}s")
        if done.returncode != 0:
            unavailable(f"{' '.join(argv)} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    found = _find()
    if found is None:
        unavailable("apt-get installed nginx, but no nginx program was found")
    return found


def render(recipe: str, upstreams: list[str], port: int) -> str:
    """The recipe with its replica ``server`` lines replaced by ``upstreams`` (host:port, same options) and its
    ``listen`` port by ``port``."""
    match = SERVER_LINE.search(recipe)
    assert match, "the recipe lists no replica"
    indent, options = match.group(1), match.group(2)
    lines = "\n".join(f"{indent}server {u} {options};" for u in upstreams)
    text = SERVER_LINE.sub("", recipe)
    text = text[: match.start()] + lines + text[match.start() :]
    text = re.sub(r"\n(\s*\n)+(\s*keepalive)", r"\n\n\2", text)
    assert len(LISTEN_LINE.findall(text)) == 1, "the recipe should listen on one port"
    return LISTEN_LINE.sub(lambda m: f"{m.group(1)}listen 127.0.0.1:{port};", text)


def main_config(folder: Path, site: Path) -> str:
    """A main nginx.conf in ``folder`` that includes ``site`` (http context)."""
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the test's folders
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} info;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {folder / 'access.log'};\n{temp}\n"
        f"    include {site};\n"
        "}\n"
    )


@dataclass
class Nginx:
    base_url: str
    folder: Path
    process: subprocess.Popen[bytes]

    def error_log(self) -> str:
        return (self.folder / "error.log").read_text(errors="replace")


def write_config(folder: Path, upstreams: list[str], port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    site = folder / "gptoss.conf"
    site.write_text(render(RECIPE.read_text(), upstreams, port))
    conf = folder / "nginx.conf"
    conf.write_text(main_config(folder, site))
    return conf


def check_config(binary: str, conf: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``conf`` (its own prefix and error log, never the system's)."""
    argv = [binary, "-t", "-p", str(conf.parent), "-e", str(conf.parent / "error.log"), "-c", str(conf)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@contextlib.contextmanager
def nginx_proxy(folder: Path, upstreams: list[str]) -> Iterator[Nginx]:
    """nginx running the recipe in front of ``upstreams`` (host:port) on a free loopback port."""
    binary = nginx_binary()
    port = free_port()
    conf = write_config(folder, upstreams, port)
    checked = check_config(binary, conf)
    assert checked.returncode == 0, checked.stderr
    argv = [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)]
    with child_process(argv) as process:
        proxy = Nginx(f"http://127.0.0.1:{port}", folder, process)
        wait_answering(process, proxy.base_url + "/live", name="nginx", timeout=30, interval=0.1, log=proxy.error_log)
        yield proxy
