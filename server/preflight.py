"""Checks made before anything slow starts (the engine can take minutes to load): refuse what would be unsafe or
could only fail later."""

from __future__ import annotations

import ipaddress
import socket

from server.errors import ConfigError
from server.keys import KeyStore
from server.settings import CoreSettings


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) only ever means this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def check_auth_for_address(settings: CoreSettings) -> None:
    """No API keys on an address other machines reach is refused, unless ``auth.allow_unauthenticated`` says so."""
    host = settings.server.host
    if is_loopback(host) or settings.auth.allow_unauthenticated or KeyStore.from_settings(settings.auth):
        return
    raise ConfigError(
        f"Refusing to serve on {host} without API keys: anyone who can reach it could use the model. Set keys in "
        f"${settings.auth.api_keys_env} (comma-separated) or auth.api_keys_file, bind 127.0.0.1, or set "
        "auth.allow_unauthenticated: true (GPTOSS_AUTH__ALLOW_UNAUTHENTICATED=true) if this is intended."
    )


def check_port_free(host: str, port: int) -> None:
    """The listening address is free now (checked before the engine loads, not after)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. Is another server running there? "
                "Choose another port with --port or server.port."
            ) from None


def preflight(settings: CoreSettings) -> None:
    check_auth_for_address(settings)
    check_port_free(settings.server.host, settings.server.port)
