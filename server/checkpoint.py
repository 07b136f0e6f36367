"""Build a tiny gpt-oss-architecture checkpoint with random weights and an o200k_harmony tokenizer.

The real vLLM engine can then run on a CPU with the exact code path used for gpt-oss-120b. The build is
deterministic from a seed and cached: a folder with a matching ``build-info.json`` is reused.

The weights are drawn with torch and written with safetensors directly, in the layout and with the initialisation
of transformers' ``GptOssForCausalLM``; ``config.json`` and ``generation_config.json`` come from transformers'
``GptOssConfig``. The model classes are never imported: ``transformers.modeling_utils`` imports torchvision whenever
it is installed (through ``transformers.loss`` and ``transformers.image_utils``), and a torchvision built for another
torch fails on import (see ``server/textonly.py``).
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
from server.paths import cache_root

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
# 2: weights written directly (no transformers model class); other bytes than version 1 for the same seed.
BUILD_VERSION = 2


def harmony_special_tokens() -> list[str]:
    """The o200k_harmony special tokens, sorted by id (199998..201087)."""
    return [_NAMED_SPECIALS.get(i, f"<|reserved_{i}|>") for i in range(199998, 201088)]


def default_checkpoint_dir(seed: int) -> Path:
    return cache_root() / f"tiny-gpt-oss-seed{seed}"


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


def tiny_config() -> Any:
    """The tiny model's ``GptOssConfig`` (transformers fills the fields TINY_CONFIG leaves out)."""
    from transformers import GptOssConfig

    config = GptOssConfig(**TINY_CONFIG, dtype="bfloat16")
    config.architectures = ["GptOssForCausalLM"]
    return config


def tiny_weights(config: Any, seed: int) -> dict[str, Any]:
    """Random bf16 weights named and shaped as ``GptOssForCausalLM(config).state_dict()``, initialised as its
    ``_init_weights`` does (normal(0, initializer_range) for matrices, embeddings, attention sinks and the router;
    zeros for the other biases; ones for the norms; the padding row of the embedding zeroed). Deterministic from
    ``seed``: every tensor is drawn from one generator in a fixed order."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    std = config.initializer_range
    hidden, vocab, experts = config.hidden_size, config.vocab_size, config.num_local_experts
    q_dim = config.num_attention_heads * config.head_dim
    kv_dim = config.num_key_value_heads * config.head_dim
    inter = config.intermediate_size

    def normal(*shape: int) -> torch.Tensor:
        return torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=generator).to(torch.bfloat16)

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(shape, dtype=torch.bfloat16)

    def ones(*shape: int) -> torch.Tensor:
        return torch.ones(shape, dtype=torch.bfloat16)

    embed = normal(vocab, hidden)
    if config.pad_token_id is not None:
        embed[config.pad_token_id] = 0
    weights: dict[str, torch.Tensor] = {"model.embed_tokens.weight": embed}
    for i in range(config.num_hidden_layers):
        layer = f"model.layers.{i}"
        weights |= {
            f"{layer}.input_layernorm.weight": ones(hidden),
            f"{layer}.self_attn.q_proj.weight": normal(q_dim, hidden),
            f"{layer}.self_attn.q_proj.bias": zeros(q_dim),
            f"{layer}.self_attn.k_proj.weight": normal(kv_dim, hidden),
            f"{layer}.self_attn.k_proj.bias": zeros(kv_dim),
            f"{layer}.self_attn.v_proj.weight": normal(kv_dim, hidden),
            f"{layer}.self_attn.v_proj.bias": zeros(kv_dim),
            f"{layer}.self_attn.o_proj.weight": normal(hidden, q_dim),
            f"{layer}.self_attn.o_proj.bias": zeros(hidden),
            f"{layer}.self_attn.sinks": normal(config.num_attention_heads),
            f"{layer}.post_attention_layernorm.weight": ones(hidden),
            f"{layer}.mlp.router.weight": normal(experts, hidden),
            f"{layer}.mlp.router.bias": normal(experts),
            f"{layer}.mlp.experts.gate_up_proj": normal(experts, hidden, 2 * inter),
            f"{layer}.mlp.experts.gate_up_proj_bias": zeros(experts, 2 * inter),
            f"{layer}.mlp.experts.down_proj": normal(experts, inter, hidden),
            f"{layer}.mlp.experts.down_proj_bias": zeros(experts, hidden),
        }
    weights["model.norm.weight"] = ones(hidden)
    weights["lm_head.weight"] = normal(vocab, hidden)
    return weights


def build_tiny_checkpoint(out_dir: Path | None = None, *, seed: int = 0, force: bool = False) -> Path:
    """Build (or reuse) the tiny checkpoint and return its folder."""
    path = out_dir or default_checkpoint_dir(seed)
    if not force and is_built(path, seed):
        return path
    from safetensors.torch import save_file
    from transformers import GenerationConfig

    log.info("building tiny gpt-oss checkpoint (seed %d) in %s", seed, path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = tiny_config()
    config.save_pretrained(str(tmp))
    GenerationConfig.from_model_config(config).save_pretrained(str(tmp))
    save_file(tiny_weights(config, seed), str(tmp / "model.safetensors"), metadata={"format": "pt"})
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
