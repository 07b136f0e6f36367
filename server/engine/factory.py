"""Build the configured engine."""

from __future__ import annotations

from server.engine.base import Engine
from server.settings import Settings


def resolve_model_path(settings: Settings) -> str:
    """The model the vLLM engine loads; builds the tiny checkpoint when none is configured."""
    vllm = settings.engine.vllm
    if vllm.model:
        return vllm.model
    from server.checkpoint import build_tiny_checkpoint

    return str(build_tiny_checkpoint(seed=vllm.tiny_seed))


def create_engine(settings: Settings) -> Engine:
    """The configured engine; with ``engine.record_dir``, wrapped to record its token streams there."""
    engine = _bare_engine(settings)
    if settings.engine.record_dir is not None:
        from server.engine.recording import RecordingEngine

        return RecordingEngine(engine, settings.engine.record_dir)
    return engine


def _bare_engine(settings: Settings) -> Engine:
    name = settings.engine.served_model_name
    if settings.engine.kind == "scripted":
        from server.engine.scripted import ScriptedEngine

        return ScriptedEngine(settings.engine.scripted, name)
    from server.engine.vllm_engine import VllmEngine

    return VllmEngine(settings.engine.vllm, resolve_model_path(settings), name)
