"""API keys: loaded from an environment variable and/or a file, compared in constant time.

Both sides are hashed and every configured key is checked (no early exit), so neither the length nor the position
of a match leaks through timing. Keys never appear in logs, errors or health output.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from server.errors import ConfigError
from server.settings import AuthSettings


class KeyStore:
    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys if k]

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> KeyStore:
        keys: list[str] = []
        raw = os.environ.get(settings.api_keys_env, "")
        keys.extend(part.strip() for part in raw.replace("\n", ",").split(","))
        if settings.api_keys_file is not None:
            path = Path(settings.api_keys_file)
            try:
                keys.extend(line.strip() for line in path.read_text().splitlines())
            except OSError as exc:
                raise ConfigError(f"Cannot read API keys file {path}: {exc}") from exc
        return cls([k for k in keys if k and not k.startswith("#")])

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def check(self, presented: str | None) -> bool:
        if not self._digests:
            return True
        digest = hashlib.sha256((presented or "").encode()).digest()
        ok = False
        for known in self._digests:
            ok |= hmac.compare_digest(digest, known)
        return ok and bool(presented)
