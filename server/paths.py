"""Where the server keeps what it writes on its own: the cache folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$GPTOSS_CACHE_DIR``, else ``$XDG_CACHE_HOME/gptoss-server``, else ``~/.cache/gptoss-server``."""
    root = os.environ.get("GPTOSS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gptoss-server"
    )
    return Path(root)
