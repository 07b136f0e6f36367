"""Sealed payloads: JSON the server hands to a client and reads back later (a stateless client's reasoning, say),
which the client can carry but neither read nor alter.

A token is base64 of ``version (1 byte) | nonce (12 bytes) | AES-256-GCM ciphertext and tag`` over the payload's
JSON, with a fixed label as associated data. The key (32 bytes, base64 where it is written down) comes from the
environment variable ``store.seal_key_env``, else the file ``store.seal_key_file``, else ``seal.key`` in the cache
folder, generated once. Replicas must share one key to read each other's tokens.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.errors import ConfigError, InvalidRequestError
from server.paths import cache_root

if TYPE_CHECKING:
    from server.settings import StoreSettings

VERSION = 1
LABEL = b"gptoss-sealed-payload"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
# Tokens longer than this (base64 characters) are refused unread.
MAX_TOKEN_CHARS = 4 * 1024 * 1024
KEY_FILE = "seal.key"


class Sealer:
    def __init__(self, key: bytes, *, max_token_chars: int = MAX_TOKEN_CHARS) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigError(f"A seal key must be {KEY_BYTES} bytes, not {len(key)}.")
        self._aead = AESGCM(key)
        self._max_chars = max_token_chars
        self._aad = LABEL + bytes([VERSION])

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> Sealer:
        return cls(load_seal_key(settings))

    def seal(self, payload: dict[str, Any]) -> str:
        """``payload`` (JSON-serialisable) as an opaque token."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(payload), self._aad)
        token = base64.b64encode(bytes([VERSION]) + nonce + sealed).decode()
        if len(token) > self._max_chars:
            raise ValueError(f"a sealed payload of {len(token)} characters is past the limit of {self._max_chars}")
        return token

    def open(self, token: str, *, param: str | None = None) -> dict[str, Any]:
        """The payload sealed in ``token``; ``InvalidRequestError`` (naming ``param``) for anything this server did
        not seal with its key, or that was altered."""
        if not isinstance(token, str) or not token:
            raise InvalidRequestError("The sealed content is empty or not a string.", param=param)
        if len(token) > self._max_chars:
            raise InvalidRequestError(
                f"The sealed content is {len(token)} characters long, past the limit of {self._max_chars}.", param=param
            )
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequestError("The sealed content is not valid base64.", param=param) from exc
        if len(raw) < 1 + NONCE_BYTES + TAG_BYTES or raw[0] != VERSION:
            raise InvalidRequestError("The sealed content is truncated or of an unknown format.", param=param)
        try:
            data = self._aead.decrypt(raw[1 : 1 + NONCE_BYTES], raw[1 + NONCE_BYTES :], self._aad)
        except InvalidTag as exc:
            raise InvalidRequestError(
                "The sealed content could not be verified: it was altered, or sealed by a server with another key.",
                param=param,
            ) from exc
        payload = orjson.loads(data)
        if not isinstance(payload, dict):
            raise InvalidRequestError("The sealed content does not hold an object.", param=param)
        return payload


def decode_key(text: str, where: str) -> bytes:
    """A key written as base64 (standard or URL-safe alphabet) of 32 bytes."""
    cleaned = "".join(text.split())
    try:
        key = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"The seal key in {where} is not base64 (generate one: openssl rand -base64 32).") from exc
    if len(key) != KEY_BYTES:
        raise ConfigError(f"The seal key in {where} is {len(key)} bytes; it must be {KEY_BYTES} (base64 of 32 bytes).")
    return key


def load_seal_key(settings: StoreSettings) -> bytes:
    """The key from ``settings.seal_key_env``, else ``settings.seal_key_file``, else the cache folder's
    ``seal.key`` (created once: concurrent first starts agree on one key)."""
    env = os.environ.get(settings.seal_key_env, "").strip()
    if env:
        return decode_key(env, f"${settings.seal_key_env}")
    if settings.seal_key_file is not None:
        try:
            text = settings.seal_key_file.read_text()
        except OSError as exc:
            raise ConfigError(f"Cannot read the seal key file {settings.seal_key_file}: {exc}") from exc
        return decode_key(text, str(settings.seal_key_file))
    return decode_key(ensure_key_file(cache_root() / KEY_FILE), str(cache_root() / KEY_FILE))


def ensure_key_file(path: Path) -> str:
    """The text of the key file at ``path``, creating it (mode 0600) with a new random key if there is none.

    The key is written to a private temporary file which is then linked into place: ``link`` fails if the file
    exists, so of several processes starting at once exactly one creates it, and nobody reads a partial file."""
    try:
        with contextlib.suppress(FileNotFoundError):
            return path.read_text()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode() + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: its key wins
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"Cannot read or create the seal key file {path}: {exc}") from exc
