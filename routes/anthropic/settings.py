"""``providers.anthropic``: Anthropic's Messages API."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from pydantic import Field

from routes.provider import section_of
from server.section import ProviderSection

if TYPE_CHECKING:
    from server.context import ServerContext

NAME = "anthropic"


class AnthropicSettings(ProviderSection):
    # Any model name is served by the one model and echoed as sent (Claude Code asks for claude-* names, and for a
    # haiku model in side requests). Off: only the served model's name and ``model_aliases``; others are a 404.
    any_model: bool = True
    # Names accepted besides the served model's when ``any_model`` is off; shell-style patterns work ("claude-*").
    model_aliases: list[str] = Field(default_factory=lambda: ["openai/gpt-oss-120b", "gpt-oss"])
    # The model listing's ``display_name`` (None: the served model's name) and ``created_at`` (RFC 3339).
    display_name: str | None = None
    created_at: str = "2025-08-05T00:00:00Z"

    def accepts(self, model: str, served: str) -> bool:
        """Whether a request naming ``model`` is served."""
        if self.any_model or model == served:
            return True
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.model_aliases)

    def listed(self, served: str) -> list[str]:
        """The names the model listing shows: the served model's, then the aliases that are no patterns."""
        plain = [a for a in self.model_aliases if a != served and not any(c in a for c in "*?[")]
        return [served, *plain]


def section(ctx: ServerContext) -> AnthropicSettings:
    return section_of(ctx, NAME, AnthropicSettings)
