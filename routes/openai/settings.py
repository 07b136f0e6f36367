"""``providers.openai``: the plain OpenAI-compatible route."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field

from routes.provider import section_of
from server.section import ProviderSection

if TYPE_CHECKING:
    from server.context import ServerContext

NAME = "openai"


class OpenAISettings(ProviderSection):
    shares_v1: ClassVar[bool] = True

    # Extra model names accepted as aliases of the served model.
    model_aliases: list[str] = Field(default_factory=lambda: ["openai/gpt-oss-120b", "gpt-oss"])
    owned_by: str = "vllm"
    # POST /v1/completions decodes the output as a harmony turn: `text` is the final answer, with its reasoning (and
    # any tool calls) in their own keys beside it, as on chat. Off: plain text with control tokens dropped, as vLLM
    # answers a raw prompt. Only this route's answer shape depends on it, so it lives here.
    completions_harmony_output: bool = False


def section(ctx: ServerContext) -> OpenAISettings:
    return section_of(ctx, NAME, OpenAISettings)
