"""Nothing leaves the machine: vLLM's usage-stats reporter and Hugging Face hub access are switched off before vLLM
is imported. The network is used only to download a hub model id that is not in the local cache (and only when
``engine.vllm.model`` is such an id)."""

from __future__ import annotations

import os
from pathlib import Path

# vLLM reports usage to its stats server unless one of these is set (vllm/usage/usage_lib.py); DO_NOT_TRACK is the
# cross-tool convention it also honours.
NO_TELEMETRY = {"VLLM_NO_USAGE_STATS": "1", "VLLM_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1"}
HUB_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def stay_offline(model: str | None) -> None:
    """Set the switches (an operator's own value wins). Hub access stays possible only for a model given as a hub
    id that is not a local folder."""
    for name, value in NO_TELEMETRY.items():
        os.environ.setdefault(name, value)
    # vLLM finds "its" address by a UDP connect to 8.8.8.8 unless told: one machine's processes talk over loopback
    # (a multi-node deployment sets VLLM_HOST_IP to the node's address itself).
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if model is None or Path(model).expanduser().exists():
        for name, value in HUB_OFFLINE.items():
            os.environ.setdefault(name, value)
