"""``providers.oxen``: identity strings, and a switch for every behaviour the wire spec leaves open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from routes.provider import section_of
from server.section import ProviderSection

if TYPE_CHECKING:
    from server.context import ServerContext

NAME = "oxen"


class OxenSettings(ProviderSection):
    # The model id clients send and that is echoed back, plus accepted aliases.
    model_name: str = "gpt-oss-120b"
    model_aliases: list[str] = Field(default_factory=list)
    # Identity of the model object on /api/ai/models.
    display_name: str = "GPT-OSS 120B"
    description: str = "OpenAI's open-weight 120B reasoning model for production, general purpose, high reasoning use."
    summary: str = "Open-weight reasoning model"
    developer_name: str = "OpenAI"
    developer_logo: str | None = None
    model_created: int = 1754352000
    released_at: str | None = "2025-08-05T00:00:00Z"
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    # INFERRED: keys alphabetical in stream chunks only ("stream"), everywhere ("all"), or nowhere ("none").
    sort_keys: Literal["stream", "all", "none"] = "stream"
    # UNKNOWN whether reasoning is returned: None omits it; a name (e.g. "reasoning_content") adds that field.
    reasoning_field: str | None = None
    # UNKNOWN stream edges. A role-only first chunk (on by default: OpenAI's SDK stream helpers, openai-node's
    # `chat.completions.stream()` and `runTools`, fail with "missing role for choice 0" on a stream whose deltas
    # never name the role); a usage chunk when stream_options.include_usage is set.
    stream_role_chunk: bool = True
    stream_usage: bool = True


def section(ctx: ServerContext) -> OxenSettings:
    return section_of(ctx, NAME, OxenSettings)
