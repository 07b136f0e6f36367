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


def section(ctx: ServerContext) -> OpenAISettings:
    return section_of(ctx, NAME, OpenAISettings)
