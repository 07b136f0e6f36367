"""``providers.ollama``: the model's identity as Ollama lists it, and a switch for each behaviour left open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from routes.ollama import names
from routes.ollama.options import parse_options
from routes.provider import section_of
from server.errors import InvalidRequestError
from server.section import ProviderSection

if TYPE_CHECKING:
    from server.context import ServerContext

NAME = "ollama"


class OllamaSettings(ProviderSection):
    """Ollama's API (``/api/chat``, ``/api/generate`` and the model endpoints) as Ollama 0.14 answers it."""

    # The one model this server has, by Ollama's name, and other names accepted for it (Ollama's name rules apply:
    # case-insensitive, `:latest` when no tag, `registry.ollama.ai/library/` when no host or namespace). Ollama's own
    # `gpt-oss` / `gpt-oss:latest` is the 20b model, so it is not an alias by default.
    model_name: str = "gpt-oss:120b"
    model_aliases: list[str] = Field(default_factory=lambda: ["gpt-oss-120b"])
    # GET /api/version (clients gate features on it; the behaviour here is 0.14's).
    version: str = "0.14.0"
    # The model's identity on /api/tags, /api/show and /api/ps (INFERRED from ollama.com's gpt-oss:120b). digest:
    # 64 hex digits; None, the sha256 of model_name (a stable id, not ollama.com's).
    digest: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    size: int = Field(65_290_000_000, ge=0)
    modified_at: str = "2025-08-05T17:00:00Z"
    family: str = "gptoss"
    parameter_size: str = "116.8B"
    quantization_level: str = "MXFP4"
    context_length: int = Field(131072, ge=1)  # the model's trained context (model_info); /api/ps shows the engine's
    license: str = "Apache License 2.0"
    # Sampling defaults where a request's `options` name none: Ollama's defaults (top_k 40, top_p 0.9) and the
    # gpt-oss Modelfile's temperature 1. Empty: the engine's defaults.
    default_options: dict[str, Any] = Field(default_factory=lambda: {"temperature": 1.0, "top_k": 40, "top_p": 0.9})
    # Output cap when `options.num_predict` is unset or -1: None, Ollama's "until the context is full" (within
    # limits.max_output_tokens); a number caps it.
    default_num_predict: int | None = Field(None, ge=1)
    # Ollama reads any body as JSON whatever its Content-Type (its docs' `curl -d` sends a form type). On: a request
    # without Origin/Sec-Fetch-Mode headers (no browser) may send any Content-Type; a browser's must be JSON. Off: 415.
    any_content_type: bool = True
    # Answer GET / and HEAD / with "Ollama is running", as clients probing for a server expect.
    root_banner: bool = True

    @field_validator("model_name")
    @classmethod
    def _a_name(cls, value: str) -> str:
        if names.parse(value) is None:
            raise ValueError(f"{value!r} is not a valid Ollama model name")
        return value

    @field_validator("default_options")
    @classmethod
    def _options(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            parse_options(value)
        except InvalidRequestError as exc:
            raise ValueError(exc.message) from None
        return value


def section(ctx: ServerContext) -> OllamaSettings:
    return section_of(ctx, NAME, OllamaSettings)
