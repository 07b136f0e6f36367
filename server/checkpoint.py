"""Build a tiny gpt-oss-architecture checkpoint with random weights and an o200k_harmony tokenizer.

The real vLLM engine can then run on a CPU with the exact code path used for gpt-oss-120b. The build is
deterministic from a seed and cached: a folder with a matching ``build-info.json`` is reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from server.harmony.vocab import VOCAB_FILE, ensure_vocab

log = logging.getLogger(__name__)

# Accepted by vLLM's CPU backend (head_dim 16 is not; see the project notes).
TINY_CONFIG: dict[str, Any] = {
    "vocab_size": 201088,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "intermediate_size": 64,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"],
    "max_position_embeddings": 131072,
    "eos_token_id": 200002,
    "pad_token_id": 199999,
    "bos_token_id": 199998,
}

O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

_NAMED_SPECIALS = {
    199998: "<|startoftext|>",
    199999: "<|endoftext|>",
    200002: "<|return|>",
    200003: "<|constrain|>",
    200005: "<|channel|>",
    200006: "<|start|>",
    200007: "<|end|>",
    200008: "<|message|>",
    200012: "<|call|>",
    200018: "<|endofprompt|>",
}
BUILD_VERSION = 1


def harmony_special_tokens() -> list[str]:
    """The o200k_harmony special tokens, sorted by id (199998..201087)."""
    return [_NAMED_SPECIALS.get(i, f"<|reserved_{i}|>") for i in range(199998, 201088)]


def default_checkpoint_dir(seed: int) -> Path:
    root = os.environ.get("GPTOSS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "gptoss-server"
    )
    return Path(root) / f"tiny-gpt-oss-seed{seed}"


def _build_info(seed: int) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(TINY_CONFIG, sort_keys=True).encode()).hexdigest()[:16]
    return {"version": BUILD_VERSION, "seed": seed, "config_sha": digest}


def is_built(path: Path, seed: int) -> bool:
    info = path / "build-info.json"
    try:
        return json.loads(info.read_text()) == _build_info(seed) and (path / "tokenizer.json").is_file()
    except (OSError, ValueError):
        return False


def build_tokenizer(out_dir: Path) -> None:
    """Write an o200k_harmony ``tokenizer.json`` (+ config) into ``out_dir``."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    vocab_dir = ensure_vocab()
    converter = TikTokenConverter(
        vocab_file=str(vocab_dir / VOCAB_FILE),
        pattern=O200K_PATTERN,
        extra_special_tokens=harmony_special_tokens(),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=converter.converted(),
        bos_token="<|startoftext|>",
        eos_token="<|return|>",
        pad_token="<|endoftext|>",
        model_max_length=131072,
    )
    tokenizer.save_pretrained(str(out_dir))


def build_tiny_checkpoint(out_dir: Path | None = None, *, seed: int = 0, force: bool = False) -> Path:
    """Build (or reuse) the tiny checkpoint and return its folder."""
    path = out_dir or default_checkpoint_dir(seed)
    if not force and is_built(path, seed):
        return path
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM

    log.info("building tiny gpt-oss checkpoint (seed %d) in %s", seed, path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.manual_seed(seed)
    config = GptOssConfig(**TINY_CONFIG, torch_dtype="bfloat16")
    model = GptOssForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(tmp), safe_serialization=True)
    build_tokenizer(tmp)
    (tmp / "build-info.json").write_text(json.dumps(_build_info(seed)))
    shutil.rmtree(path, ignore_errors=True)
    tmp.replace(path)
    return path


def build_dummy_model_dir(out_dir: Path) -> Path:
    """A folder vLLM can load with ``load_format=dummy``: gpt-oss-120b's real ``config.json`` and the
    o200k_harmony tokenizer, no weights. Runs the full-size architecture for benchmarking on a GPU."""
    from server.settings import CONFIG_DIR

    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CONFIG_DIR / "gpt-oss-120b" / "config.json", out_dir / "config.json")
    (out_dir / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 199998, "eos_token_id": [200002, 199999, 200012], "pad_token_id": 199999})
    )
    build_tokenizer(out_dir)
    return out_dir
