#!/usr/bin/env python3
"""The CPU race in one command: vLLM's own OpenAI server vs our server, same tiny checkpoint, same engine settings.

Starts both servers (different ports; both stay loaded, only one is measured at a time), then for each repetition
and concurrency measures the pair alternately (the order flips every repetition), streaming, fixed prompt and output
lengths. Then our provider routes, each against the same server and alternated with our OpenAI route. Reports
medians over repetitions, the ratios ours/vLLM (output tokens/s, TTFT p50) and each provider route relative to our
OpenAI route; writes ``race.json`` and ``race.png`` to ``--out-dir``. Metric definitions: ``scripts/bench.py``.

With a random-weight checkpoint the model never writes a harmony header, so both servers hold the text back until
the end of the turn: TTFT is then close to E2E for both and ITL has no gaps. ``first_chunk_ms`` (vllm bench serve's
TTFT: the first event with choices) is recorded too, but our server sends its role chunk before prefill and vLLM
after the first token, so it is not comparable between the two.

``--gpu`` switches the server settings to the GPU recipe (``scripts/race_gpu.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # scripts/bench.py, imported as a sibling module

from server import textonly

# Engine settings both servers get (CPU profile): keep in sync with configs/cpu.yaml.
CPU_ENGINE = {"max_model_len": 4096, "gpu_memory_utilization": 0.2, "kv_cache_gib": 1, "enforce_eager": True}


def build_checkpoint() -> str:
    """The tiny random-weight checkpoint folder (built and cached by the server CLI)."""
    out = subprocess.run(
        [sys.executable, "-m", "server", "build-checkpoint"], cwd=bench.REPO, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


# our engine.vllm settings -> the vLLM server flag that sets the same engine argument
VLLM_FLAGS = {
    "max_model_len": "--max-model-len",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "max_num_batched_tokens": "--max-num-batched-tokens",
    "max_num_seqs": "--max-num-seqs",
    "load_format": "--load-format",
    "tensor_parallel_size": "--tensor-parallel-size",
    "max_cudagraph_capture_size": "--max-cudagraph-capture-size",
    "stream_interval": "--stream-interval",
    "kv_cache_dtype": "--kv-cache-dtype",
    "data_parallel_size": "--data-parallel-size",
}
VLLM_SWITCHES = {"enforce_eager": "--enforce-eager", "async_scheduling": "--async-scheduling"}
# settings that are explicitly on or off: the flag and its negation
VLLM_BOOLEANS = {"enable_prefix_caching": ("--enable-prefix-caching", "--no-enable-prefix-caching")}


def vllm_argv(model: str, port: int, engine: dict[str, Any], extra: list[str]) -> list[str]:
    """vLLM's server command with the same engine arguments as our ``engine.vllm`` settings (``log_stats``: vLLM's
    stat logging, on unless it is false)."""
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
        "--served-model-name", "gpt-oss-120b", "--port", str(port), "--host", "127.0.0.1",
        "--disable-uvicorn-access-log",
    ]  # fmt: skip
    if engine.get("log_stats") is False:
        argv.append("--disable-log-stats")
    for key, flag in VLLM_FLAGS.items():
        if engine.get(key) is not None:
            argv += [flag, str(engine[key])]
    argv += [flag for key, flag in VLLM_SWITCHES.items() if engine.get(key)]
    argv += [on if engine[key] else off for key, (on, off) in VLLM_BOOLEANS.items() if engine.get(key) is not None]
    return argv + extra


def ours_config(model: str, engine: dict[str, Any], vllm_extra: dict[str, Any]) -> dict[str, Any]:
    vllm: dict[str, Any] = {
        "model": model,
        "max_model_len": engine["max_model_len"],
        "gpu_memory_utilization": engine["gpu_memory_utilization"],
        "enforce_eager": bool(engine.get("enforce_eager")),
        "log_stats": engine.get("log_stats") is not False,
        **vllm_extra,
    }
    if engine.get("kv_cache_gib") is not None:
        vllm["cpu_kvcache_space_gib"] = engine["kv_cache_gib"]
    return {
        "engine": {"kind": "vllm", "served_model_name": "gpt-oss-120b", "vllm": vllm},
        # every repetition sends the same prompts, which vLLM's server tokenizes each time: so does ours
        "limits": {"max_concurrent_requests": 1024, "render_cache_bytes": 0},
        "auth": {"api_keys_env": "GPTOSS_BENCH_UNUSED_KEYS"},
        "server": {"log_level": "warning"},
    }


def api_processes(root: int, port: int) -> list[Any]:
    """The processes of ``root``'s tree that listen on ``port``: the API server process(es), without the engine core
    and its workers (ours: the server child or its API processes; vLLM's: its API server process(es))."""
    import psutil

    found = []
    with contextlib.suppress(psutil.Error):
        tree = psutil.Process(root)
        for proc in [tree, *tree.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                conns = proc.net_connections("tcp") if hasattr(proc, "net_connections") else proc.connections("tcp")
                if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns):
                    found.append(proc)
    return found


def api_cpu_seconds(procs: list[Any]) -> float:
    import psutil

    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def measure(target: bench.Target, sc: bench.Scenario, progress: bool, api: list[Any] | None = None) -> dict[str, Any]:
    """One scenario; with ``api`` (the target's API processes), their CPU seconds per output token as well."""
    cpu0 = api_cpu_seconds(api) if api else 0.0
    results = asyncio.run(bench.run_scenario(target, sc, progress=progress))
    cpu = api_cpu_seconds(api) - cpu0 if api else None
    summary = bench.summarize(results)
    warning = bench.check_token_counts(results, target.route, sc.output_tokens)
    per_token = cpu / summary.output_tokens * 1e6 if cpu is not None and summary.output_tokens else None
    extra = f"  api cpu {per_token:.0f} us/token" if per_token is not None else ""
    print(bench.format_row(target.label, sc.concurrency, summary) + extra + (f"  [{warning}]" if warning else ""),
          flush=True)  # fmt: skip
    return {"summary": asdict(summary), "warning": warning, "api_cpu_s": cpu, "api_cpu_us_per_token": per_token}


def median_of(runs: list[dict[str, Any]], key: str, sub: str | None = None) -> float:
    values = [r["summary"][key][sub] if sub else r["summary"][key] for r in runs]
    return bench.percentile([v for v in values if v is not None], 50)


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per (group, label, concurrency) and the ratios the README quotes."""
    table: dict[str, Any] = {"race": {}, "routes": {}}
    for group in ("race", "routes"):
        sel = [r for r in runs if r["group"] == group]
        for c in sorted({r["concurrency"] for r in sel}):
            row: dict[str, Any] = {}
            for label in sorted({r["label"] for r in sel if r["concurrency"] == c}):
                mine = [r for r in sel if r["concurrency"] == c and r["label"] == label]
                row[label] = {
                    "output_tokens_per_s": median_of(mine, "output_tokens_per_s"),
                    "requests_per_s": median_of(mine, "requests_per_s"),
                    "ttft_p50_ms": median_of(mine, "ttft_ms", "p50"),
                    "ttft_p99_ms": median_of(mine, "ttft_ms", "p99"),
                    "e2e_p50_ms": median_of(mine, "e2e_ms", "p50"),
                    "first_chunk_p50_ms": median_of(mine, "first_chunk_ms", "p50"),
                    "api_cpu_us_per_token": bench.percentile(
                        [r["api_cpu_us_per_token"] for r in mine if r.get("api_cpu_us_per_token") is not None], 50
                    )
                    if any(r.get("api_cpu_us_per_token") is not None for r in mine)
                    else None,
                    "errors": sum(r["summary"]["errors"] for r in mine),
                    "repetitions": len(mine),
                }
            ref = row.get("vllm") if group == "race" else row.get("openai")
            for stats in row.values():
                if ref is not None and stats is not ref:
                    stats["ratio_tok_s"] = stats["output_tokens_per_s"] / ref["output_tokens_per_s"]
                    stats["ratio_ttft_p50"] = stats["ttft_p50_ms"] / ref["ttft_p50_ms"]
                    if stats["api_cpu_us_per_token"] and ref["api_cpu_us_per_token"]:
                        stats["ratio_api_cpu"] = stats["api_cpu_us_per_token"] / ref["api_cpu_us_per_token"]
            table[group][str(c)] = row
    return table


def print_table(table: dict[str, Any]) -> None:
    print(
        "\n| concurrency | target | output tok/s | TTFT p50 ms | E2E p50 ms | API CPU us/token | ratio tok/s "
        "| ratio TTFT p50 | ratio API CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for group in ("race", "routes"):
        for c, row in table[group].items():
            for label, s in row.items():
                ratio = f"{s['ratio_tok_s']:.3f}" if "ratio_tok_s" in s else "-"
                rttft = f"{s['ratio_ttft_p50']:.3f}" if "ratio_ttft_p50" in s else "-"
                cpu = f"{s['api_cpu_us_per_token']:.0f}" if s.get("api_cpu_us_per_token") else "-"
                rcpu = f"{s['ratio_api_cpu']:.3f}" if "ratio_api_cpu" in s else "-"
                print(
                    f"| {c} | {label} | {s['output_tokens_per_s']:.1f} | {s['ttft_p50_ms']:.0f} | {s['e2e_p50_ms']:.0f}"
                    f" | {cpu} | {ratio} | {rttft} | {rcpu} |"
                )


def chart(path: Path, table: dict[str, Any], title: str) -> None:
    panels: dict[str, dict[str, dict[str, float]]] = {"output tokens/s": {}, "TTFT p50 (ms)": {}}
    for c, row in table["race"].items():
        for label, s in row.items():
            panels["output tokens/s"].setdefault(label, {})[f"c={c}"] = s["output_tokens_per_s"]
            panels["TTFT p50 (ms)"].setdefault(label, {})[f"c={c}"] = s["ttft_p50_ms"]
    routes: dict[str, dict[str, float]] = {}
    for c, row in table["routes"].items():
        for label, s in row.items():
            routes.setdefault(f"c={c}", {})[label] = s.get("ratio_tok_s", 1.0)
    if routes:
        panels["routes: tok/s relative to our /v1"] = routes
    bench.bar_chart(path, title, panels)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--model", help="checkpoint folder; default: the tiny CPU checkpoint (built if missing)")
    p.add_argument("--repetitions", type=int, default=3)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--provider-concurrency", type=int, nargs="*", default=[8], help="empty: skip the provider routes")
    p.add_argument("--routes", nargs="+", default=list(bench.PROVIDER_ROUTES), choices=bench.PROVIDER_ROUTES)
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--output-tokens", type=int, default=64)
    p.add_argument("--requests-per-concurrency", type=int, default=3, help="requests = max(16, k * concurrency)")
    p.add_argument("--min-requests", type=int, default=16)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--time-limit", type=float, default=240.0, help="seconds per scenario before sending stops")
    p.add_argument("--ready-timeout", type=float, default=1200.0)
    p.add_argument("--out-dir", default="bench-results")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--sequential", action="store_true", help="load one server at a time, alternating per repetition")
    p.add_argument("--gpu", action="store_true", help="GPU engine settings (see scripts/race_gpu.sh)")
    p.add_argument("--ours-config", help="GPU: our server's YAML (engine settings must match the vLLM flags)")
    p.add_argument("--vllm-arg", action="append", default=[], help="extra vLLM server flag (repeat; GPU recipe)")
    p.add_argument(
        "--stats",
        choices=["on", "off"],
        default="on",
        help="vLLM's stat logging (the engine metrics on /metrics), the same in both servers; on: both defaults",
    )
    args = p.parse_args(argv)
    bench.exit_on_sigterm()

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = args.model or ("" if args.gpu else build_checkpoint())
    tmp = Path(tempfile.mkdtemp(prefix="race-"))
    ours_port, vllm_port = bench.free_port(), bench.free_port()
    if args.gpu:
        if not args.ours_config:
            p.error("--gpu needs --ours-config")
        config = yaml.safe_load(Path(args.ours_config).read_text())
        engine = config["engine"]["vllm"]
        engine["log_stats"] = args.stats == "on"
        config.setdefault("limits", {})["render_cache_bytes"] = 0  # as ``ours_config``
        model = args.model or engine["model"]
        engine["model"] = model  # one model for both servers
        config_path = tmp / "ours.yaml"
        config_path.write_text(yaml.safe_dump(config))
        vllm_env: dict[str, str] = {str(k): str(v) for k, v in (engine.get("env") or {}).items()}  # kernel switches
        vllm_cmd = vllm_argv(model, vllm_port, engine, args.vllm_arg)
    else:
        engine = {**CPU_ENGINE, "log_stats": args.stats == "on"}
        config_path = tmp / "ours.yaml"
        config_path.write_text(yaml.safe_dump(ours_config(model, engine, {})))
        vllm_env = {"VLLM_CPU_KVCACHE_SPACE": str(CPU_ENGINE["kv_cache_gib"])}
        vllm_cmd = vllm_argv(model, vllm_port, engine, args.vllm_arg)
    # vLLM's own server gets what ours does: no torchvision/torchaudio/torchcodec in its processes.
    vllm_env["PYTHONPATH"] = textonly.with_site_dir(os.environ)["PYTHONPATH"]
    ours_cmd = [sys.executable, "-m", "server", "serve", "--config", str(config_path), "--port", str(ours_port)]
    ours_cmd += ["--host", "127.0.0.1"]
    vllm_url, ours_url = f"http://127.0.0.1:{vllm_port}", f"http://127.0.0.1:{ours_port}"
    report: dict[str, Any] = {
        "config": dict(vars(args)),
        "model": Path(model).name,
        "engine": CPU_ENGINE if not args.gpu else "see --ours-config",
        "vllm_cmd": vllm_cmd[1:],
        "ours_config": yaml.safe_load(config_path.read_text()),
        "runs": [],
    }
    started = time.monotonic()
    env = {"GPTOSS_BENCH_UNUSED_KEYS": ""}
    servers = {
        "vllm": (vllm_cmd, vllm_url, vllm_env),
        "ours": (ours_cmd, ours_url, env),
    }

    ports = {"vllm": vllm_port, "ours": ours_port}
    api: dict[str, list[Any]] = {}

    @contextlib.contextmanager
    def serve(name: str) -> Iterator[Any]:
        argv, url, extra_env = servers[name]
        print(f"starting {name} ({url}) on {Path(model).name} ...", flush=True)
        log = out_dir / f"race-{name}.log"
        with bench.child_server(argv, url + "/health", log, extra_env, args.ready_timeout) as proc:
            api[name] = api_processes(proc.pid, ports[name])
            print(f"{name}: API process(es) {[p.pid for p in api[name]]}", flush=True)
            yield proc

    targets = {
        "vllm": bench.Target("vllm", vllm_url, bench.ROUTES["vllm"]),
        "ours": bench.Target("ours", ours_url, bench.ROUTES["openai"]),
    }
    routes = [bench.Target(name, ours_url, bench.ROUTES[name]) for name in ["openai", *args.routes]]

    def scenario(c: int) -> bench.Scenario:
        n = max(args.min_requests, args.requests_per_concurrency * c)
        return bench.Scenario(c, n, args.prompt_tokens, args.output_tokens, True, args.warmup, args.time_limit)

    def race(rep: int, c: int, names: list[str]) -> None:
        for name in names:
            run = measure(targets[name], scenario(c), not args.no_progress, api.get(name))
            report["runs"].append({"group": "race", "rep": rep, "label": name, "concurrency": c, **run})

    def provider_routes(rep: int) -> None:
        for c in args.provider_concurrency:
            for target in routes if rep % 2 == 0 else routes[::-1]:
                run = measure(target, scenario(c), not args.no_progress, api.get("ours"))
                report["runs"].append({"group": "routes", "rep": rep, "label": target.label, "concurrency": c, **run})

    if args.sequential:  # one engine loaded at a time (a GPU too small for two): alternate whole servers
        for rep in range(args.repetitions):
            for name in ["vllm", "ours"] if rep % 2 == 0 else ["ours", "vllm"]:
                with serve(name):
                    for c in args.concurrency:
                        race(rep, c, [name])
                    if name == "ours":
                        provider_routes(rep)
    else:  # both loaded, measured alternately per concurrency
        with serve("ours"), serve("vllm"):
            print(f"both ready after {time.monotonic() - started:.0f}s", flush=True)
            for rep in range(args.repetitions):
                for c in args.concurrency:
                    race(rep, c, ["vllm", "ours"] if rep % 2 == 0 else ["ours", "vllm"])
                provider_routes(rep)
    report["elapsed_s"] = time.monotonic() - started
    report["table"] = aggregate(report["runs"])
    print_table(report["table"])
    bench.write_json(out_dir / "race.json", report)
    title = f"race: {Path(model).name}, {args.prompt_tokens} in / {args.output_tokens} out, streaming"
    chart(out_dir / "race.png", report["table"], title)
    print(f"wrote {out_dir / 'race.json'} and {out_dir / 'race.png'} ({report['elapsed_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
