"""API keys: loaded from an environment variable and/or a file, compared in constant time.

Both sides are hashed and every configured key is checked (no early exit), so neither the length nor the position
of a match leaks through timing. Keys never appear in logs, errors or health output: each has a name, which does
(``name:key`` in the file or the variable; unnamed keys are ``key-1``, ``key-2``, ... in the order given).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from server.errors import ConfigError
from server.settings import AuthSettings

NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,63}):(\S+)$")


class KeyStore:
    def __init__(self, keys: list[str]) -> None:
        entries = []
        for index, key in enumerate((k for k in keys if k), start=1):
            named = NAMED.match(key)
            name, secret = (named.group(1), named.group(2)) if named else (f"key-{index}", key)
            entries.append((name, hashlib.sha256(secret.encode()).digest()))
        self._entries = entries
        self._digests = [digest for _, digest in entries]

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

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._entries]

    def identify(self, presented: str | None) -> str | None:
        """The name of the key presented, or None (every key is compared, in constant time)."""
        digest = hashlib.sha256((presented or "").encode()).digest()
        found: str | None = None
        for name, known in self._entries:
            if hmac.compare_digest(digest, known) and found is None:
                found = name
        return found if presented else None

    def check(self, presented: str | None) -> bool:
        if not self._digests:
            return True
        return self.identify(presented) is not None
