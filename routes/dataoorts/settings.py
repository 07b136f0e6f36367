"""``providers.dataoorts``: identity strings, and a switch for every behaviour the wire spec leaves open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from routes.provider import section_of
from server.section import ProviderSection

if TYPE_CHECKING:
    from server.context import ServerContext

NAME = "dataoorts"


class DataoortsSettings(ProviderSection):
    # The catalogue name clients send at top level (Cloudflare's name minus "@cf/"), plus accepted aliases.
    model_name: str = "openai/gpt-oss-120b"
    model_aliases: list[str] = Field(default_factory=lambda: ["@cf/openai/gpt-oss-120b"])
    # Cloudflare's schema defaults, applied when `data` omits them (None: the engine's own default).
    default_max_tokens: int | None = Field(256, ge=1)
    default_temperature: float | None = Field(0.6, ge=0, le=5)
    # INFERRED: `result` is the documented {response, tool_calls, usage}; "chat_completion" returns the
    # newer Cloudflare-native OpenAI chat.completion object inside the envelope instead.
    result_shape: Literal["envelope", "chat_completion"] = "envelope"
    # UNKNOWN whether reasoning is returned; True adds it (result.reasoning / "reasoning" stream events).
    include_reasoning: bool = False
    # INFERRED stream form: classic `{"response": ...}` events; True adds Cloudflare's random "p" padding key.
    stream_padding: bool = False
    # INFERRED error envelope key order: Cloudflare's (result, success, errors, messages) or alphabetical.
    error_key_order: Literal["cloudflare", "alphabetical"] = "cloudflare"


def section(ctx: ServerContext) -> DataoortsSettings:
    return section_of(ctx, NAME, DataoortsSettings)
