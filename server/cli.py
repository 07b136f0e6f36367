"""Command line: ``python -m server serve|print-config|build-checkpoint``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from server.errors import ConfigError
from server.settings import CONFIG_DIR, Settings, load_settings, profile_choice


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    server: dict[str, Any] = {}
    if getattr(args, "host", None):
        server["host"] = args.host
    if getattr(args, "port", None) is not None:
        server["port"] = args.port
    if getattr(args, "log_level", None):
        server["log_level"] = args.log_level
    if server:
        out["server"] = server
    engine: dict[str, Any] = {}
    if getattr(args, "engine", None):
        engine["kind"] = args.engine
    if getattr(args, "record", None) is not None:
        engine["record_dir"] = str(args.record)
    if getattr(args, "replay", None) is not None:
        engine.update(kind="scripted", scripted={"mode": "recording", "recording_dir": str(args.replay)})
    if engine:
        out["engine"] = engine
    return out


def _profile(args: argparse.Namespace) -> str:
    if args.config is not None:
        return f"{args.config} (--config)"
    path, reason = profile_choice()
    return f"{path.relative_to(CONFIG_DIR.parent) if path.is_relative_to(CONFIG_DIR.parent) else path} ({reason})"


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings the command line names (profile or ``--config``, flags over it)."""
    return load_settings(args.config, _overrides(args))


def banner(settings: Settings, keys: int, providers: list[str], profile: str = "") -> str:
    engine = settings.engine
    model = engine.vllm.model or "tiny random-weight gpt-oss checkpoint (built on first run)"
    if engine.kind == "scripted":
        model = f"scripted ({engine.scripted.mode})"
    if engine.record_dir is not None:
        model += f", recorded to {engine.record_dir}"
    url = f"http://{settings.server.host}:{settings.server.port}"
    testing = settings.testing
    return "\n".join(
        [
            "gpt-oss server",
            *([f"  profile    {profile}"] if profile else []),
            f"  engine     {engine.kind}",
            f"  model      {model}  (served as '{engine.served_model_name}')",
            f"  routes     {', '.join(providers)}",
            f"  auth       {'on, ' + str(keys) + ' key(s)' if keys else 'OFF (no API keys configured)'}",
            f"  listening  {url}"
            + (f"  ({settings.server.api_processes} API processes)" if settings.server.api_processes > 1 else ""),
            *(
                [f"  faults     ON ({len(testing.faults)} rule(s), header {testing.fault_header})"]
                if testing.faults_enabled
                else []
            ),
        ]
    )


def print_banner(app: Any, args: argparse.Namespace) -> None:
    from routes import WIRE_APIS

    ctx = app.state.ctx
    enabled = [f"{p.name} ({p.paths})" for p in WIRE_APIS if p.enabled(ctx)]
    sys.stderr.write(banner(ctx.settings, len(ctx.keys), enabled, _profile(args)) + "\n")


def serve(args: argparse.Namespace) -> int:
    from server.supervisor import die_with_parent, is_child, remove_orphan_segments, supervise

    settings = settings_for(args)
    if not is_child():  # the supervisor (or an unsupervised server) checks once, before anything slow starts
        from server.preflight import preflight

        preflight(settings)
    if settings.server.supervise and not is_child():
        return supervise(args.argv, settings.server.drain_timeout_s)
    if is_child():
        die_with_parent()
    if settings.server.api_processes > 1:
        from server.multiproc import serve_processes

        logging.basicConfig(
            level=settings.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return serve_processes(settings, args.argv)
    from server.offline import stay_offline

    stay_offline(settings.engine.vllm.model)

    from server.app import create_app
    from server.http.server import build_server

    logging.basicConfig(
        level=settings.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings)
    ctx = app.state.ctx
    print_banner(app, args)
    started = time.time()
    build_server(app).run()
    if is_child() or not settings.server.supervise:  # a supervisor that died cannot clean up after this tree
        remove_orphan_segments(started)
    return ctx.exit_code or 0


def print_config(args: argparse.Namespace) -> int:
    from server.http.auth import KeyStore
    from server.store.base import redacted_url

    settings = settings_for(args)
    data = settings.model_dump(mode="json")
    data["auth"]["keys_loaded"] = len(KeyStore.from_settings(settings.auth))  # counts only, never keys
    if settings.store.url:
        data["store"]["url"] = redacted_url(settings.store.url)
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    return 0


def build_checkpoint(args: argparse.Namespace) -> int:
    from server.checkpoint import build_tiny_checkpoint

    logging.basicConfig(level=logging.INFO)
    path = build_tiny_checkpoint(args.out, seed=args.seed, force=args.force)
    sys.stdout.write(f"{path}\n")
    return 0


def dummy_model_dir(args: argparse.Namespace) -> int:
    from server.checkpoint import build_dummy_model_dir

    logging.basicConfig(level=logging.INFO)
    sys.stdout.write(f"{build_dummy_model_dir(args.out)}\n")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gptoss-server", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("serve", serve, "start the HTTP server"),
        ("print-config", print_config, "show the merged settings (no secrets)"),
    ):
        sp = sub.add_parser(name, help=text)
        sp.set_defaults(func=func)
        sp.add_argument("--config", type=Path, default=None, help="YAML settings file (default: auto profile)")
        sp.add_argument("--host", default=None)
        sp.add_argument("--port", type=int, default=None)
        sp.add_argument("--engine", choices=["vllm", "scripted"], default=None)
        sp.add_argument(
            "--record", type=Path, default=None, metavar="DIR", help="record each request's engine token stream in DIR"
        )
        sp.add_argument(
            "--replay",
            type=Path,
            default=None,
            metavar="DIR",
            help="serve a recording (the scripted engine replays DIR)",
        )
        sp.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"], default=None)
        sp.add_argument("--print-config", action="store_true", help="print the merged settings and exit")
    sp = sub.add_parser("build-checkpoint", help="build the tiny random-weight gpt-oss checkpoint")
    sp.set_defaults(func=build_checkpoint)
    sp.add_argument("--out", type=Path, default=None)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--force", action="store_true")
    sp = sub.add_parser("dummy-model-dir", help="gpt-oss-120b config + tokenizer for load_format=dummy")
    sp.set_defaults(func=dummy_model_dir)
    sp.add_argument("--out", type=Path, required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if getattr(args, "print_config", False):
        args.func = print_config
    try:
        return int(args.func(args))
    except ConfigError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        return 2
