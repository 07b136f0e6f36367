"""``providers.aimlapi``: identity strings, and a switch for every behaviour the wire spec leaves open."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from routes.provider import section_of
from server.section import ProviderSection

if TYPE_CHECKING:
    from server.context import ServerContext

NAME = "aimlapi"


class AimlapiSettings(ProviderSection):
    shares_v1: ClassVar[bool] = True

    # The one value of the request's `model` enum, echoed in responses.
    model_id: str = "openai/gpt-oss-120b"
    # INFERRED: `model` is an enum, so an unknown one is a 400 body-validation error (404 is the alternative).
    unknown_model_status: Literal[400, 404] = 400
    # UNKNOWN how validation detail is carried: True appends it to "Body validation error!" in `message`.
    validation_detail_in_message: bool = True
    # The spec types `message.content` as a non-null string: "" (default) or null when only tools were called.
    tool_call_content: Literal["empty", "null"] = "empty"
    # INFERRED stream shape: a final `choices: []` usage chunk even without stream_options.include_usage.
    stream_usage_always: bool = True
    # The spec's chunk schema requires `role` and `content` in every delta (OpenRouter sends both each time).
    stream_role_every_chunk: bool = True
    # The spec's chunk schema requires id/type/name on every tool-call delta: send each call whole.
    stream_whole_tool_calls: bool = True
    # UNKNOWN mid-stream error: OpenRouter's chunk with `error` + finish_reason "error" (default), or the envelope.
    stream_error_style: Literal["openrouter", "envelope"] = "openrouter"
    # `meta.usage {credits_used, usd_spent}` on the body and the last chunk (2026 docs), priced as below.
    include_meta: bool = True
    usd_per_million_prompt_tokens: float = Field(0.0, ge=0)
    usd_per_million_completion_tokens: float = Field(0.0, ge=0)
    credits_per_usd: float = Field(2_000_000.0, ge=0)
    # Also answer GET /models and GET /api/v1/models (documented aliases of /v1/models).
    models_aliases: bool = True
    model_name: str = "GPT OSS 120B"
    model_developer: str = "OpenAI"
    model_context_length: int = Field(128000, ge=1)


def section(ctx: ServerContext) -> AimlapiSettings:
    return section_of(ctx, NAME, AimlapiSettings)
