"""Engines behind one narrow seam (see ``base``). Only ``vllm_engine`` imports vLLM."""

from server.engine.base import Engine, EngineInfo, EngineStep, GenerationRequest

__all__ = ["Engine", "EngineInfo", "EngineStep", "GenerationRequest"]
