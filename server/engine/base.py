"""The engine seam: token ids in, token-id deltas out.

An engine runs one async generator per request, can abort a request, reports its health and a few
read-only facts. The vLLM engine and the scripted engine both implement it; nothing else in the
server knows which one it talks to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from server.types import PromptLogprobs, SamplingOptions, TokenLogprob

EngineFinish = Literal["stop", "length", "abort"]

# A constraint's key for the client's own structural tag: {"param": request field, "tag": JSON text}.
CLIENT_TAG = "client_structural_tag"


@dataclass(slots=True)
class GenerationRequest:
    """One engine request; ``sampling.prompt_logprobs`` asks for the prompt's logprobs (vLLM's ``prompt_logprobs``)."""

    request_id: str
    prompt_token_ids: list[int]
    sampling: SamplingOptions
    max_tokens: int
    stop_token_ids: tuple[int, ...]
    # Constrained decoding, engine-neutral: {"json": schema} | {"json_object": True} | {"structural_tag": "<json>"},
    # the last with CLIENT_TAG where it holds a client's own structural tag (the engine checks that tag alone first)
    constraint: dict[str, object] | None = None


@dataclass(slots=True)
class EngineStep:
    """New tokens since the previous step; ``finish_reason`` is set on the last one."""

    token_ids: list[int]
    finish_reason: EngineFinish | None = None
    stop_reason: int | str | None = None
    logprobs: list[TokenLogprob] | None = None
    # prompt tokens the engine served from its prefix cache (reported with the first step)
    cached_tokens: int | None = None
    # with ``sampling.prompt_logprobs``: one entry per prompt token (the first None), with the first step
    prompt_logprobs: PromptLogprobs | None = None
    # with the last step: what the engine's KV connector returned (vLLM's ``kv_transfer_params``)
    kv_transfer_params: dict[str, Any] | None = None


@dataclass(slots=True)
class EngineInfo:
    name: str
    model: str
    max_model_len: int
    details: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    @property
    def info(self) -> EngineInfo: ...

    async def start(self) -> None:
        """Load the model; returns when the engine can serve."""

    async def shutdown(self) -> None: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[EngineStep]:
        """Stream the request's tokens. Closing the iterator early aborts the request."""
        ...

    async def abort(self, request_id: str) -> None: ...

    def validate(self, request: GenerationRequest) -> None:
        """Raise ``InvalidRequestError`` for what this engine cannot run (e.g. an invalid grammar)."""

    async def check_health(self) -> None:
        """Raise ``EngineUnavailableError`` if the engine cannot serve."""

    def num_running(self) -> int:
        """Requests admitted and not yet finished or aborted."""
        ...
