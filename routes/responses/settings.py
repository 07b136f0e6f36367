"""``providers.responses``: OpenAI's Responses API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from routes.provider import section_of
from server.section import ProviderSection

if TYPE_CHECKING:
    from server.context import ServerContext

NAME = "responses"


class ResponsesSettings(ProviderSection):
    # Extra model names accepted as aliases of the served model.
    model_aliases: list[str] = Field(default_factory=lambda: ["openai/gpt-oss-120b", "gpt-oss"])
    # Whether a request that names no ``store`` is stored (OpenAI's default: true).
    store_by_default: bool = True
    # How many responses back ``previous_response_id`` may reach (each is one store read).
    max_chain: int = Field(1000, ge=1)
    # Background responses running at once in this process; one more is a 429.
    max_background: int = Field(64, ge=1)


def section(ctx: ServerContext) -> ResponsesSettings:
    return section_of(ctx, NAME, ResponsesSettings)
