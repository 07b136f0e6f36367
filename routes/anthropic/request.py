"""The bodies of ``POST /v1/messages`` and ``/v1/messages/count_tokens``, validated as Anthropic validates them, and
the mapping of thinking and effort onto harmony's reasoning effort.

Fields real clients send that change nothing here (``metadata``, ``cache_control``, ``context_management``,
``service_tier``, ``container``, ``speed``, ``inference_geo``, ...) and unknown ones are accepted and ignored; a known
field with a wrong type or value is a 400 naming it. ``messages``, ``system`` and ``tools`` are read by
``blocks.py``.

Reasoning effort (gpt-oss has three levels): ``output_config.effort`` when given (``low``, ``medium``, ``high``;
``xhigh`` and ``max`` are ``high``); else ``thinking``: ``enabled`` by its ``budget_tokens`` (below 4,096 ``low``,
below 16,384 ``medium``, else ``high``), ``disabled`` ``low``, ``adaptive`` (or none) the server's default.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.errors import InvalidRequestError
from server.types import ReasoningEffort

INT64 = 2**63 - 1
MIN_BUDGET = 1024  # Anthropic's least thinking.budget_tokens
# budget_tokens below each bound -> that effort; at or past the last, high
BUDGET_EFFORT: tuple[tuple[int, ReasoningEffort], ...] = ((4096, "low"), (16384, "medium"))
EFFORTS: dict[str, ReasoningEffort] = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}

Thinking = Literal["shown", "omitted", "none"]  # how the model's reasoning appears in the answer


class ThinkingParam(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = Field(None, ge=0, le=INT64)
    display: Literal["summarized", "omitted"] | None = None


class OutputFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: OutputFormat | None = None


class ToolChoiceParam(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(None, max_length=256)
    disable_parallel_tool_use: bool | None = None  # gpt-oss ends its turn at each call: one call per turn anyway


class CountTokensRequest(BaseModel):
    """``MessageCountTokensParams``: what this server reads."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=256)
    messages: list[dict[str, Any]] = Field(min_length=1, max_length=100_000)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=4096)
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingParam | None = None
    output_config: OutputConfig | None = None
    max_tokens: int | None = Field(None, ge=1, le=INT64)

    def effort(self) -> ReasoningEffort | None:
        """Harmony's reasoning effort for this request (None: the server's default)."""
        if self.output_config is not None and self.output_config.effort is not None:
            return EFFORTS[self.output_config.effort]
        thinking = self.thinking
        if thinking is None or thinking.type in ("adaptive", "between_tools"):
            return None
        if thinking.type == "disabled":
            return "low"
        budget = thinking.budget_tokens or 0
        return next((effort for bound, effort in BUDGET_EFFORT if budget < bound), "high")

    def thinking_shown(self) -> Thinking:
        """``none`` with thinking disabled, ``omitted`` (empty thinking, a signature still) with
        ``display: "omitted"``, else ``shown``."""
        if self.thinking is None:
            return "shown"
        if self.thinking.type == "disabled":
            return "none"
        return "omitted" if self.thinking.display == "omitted" else "shown"

    def check(self) -> None:
        """Combinations Anthropic refuses."""
        thinking = self.thinking
        if thinking is not None and thinking.type == "enabled":
            if thinking.budget_tokens is None:
                raise InvalidRequestError(
                    "thinking.enabled.budget_tokens: Field required", param="thinking.budget_tokens"
                )
            if thinking.budget_tokens < MIN_BUDGET:
                raise InvalidRequestError(
                    f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_BUDGET}",
                    param="thinking.budget_tokens",
                )
            if self.max_tokens is not None and thinking.budget_tokens >= self.max_tokens:
                raise InvalidRequestError(
                    "`max_tokens` must be greater than `thinking.budget_tokens`.", param="max_tokens"
                )


class MessagesRequest(CountTokensRequest):
    """``MessageCreateParams``: what this server reads."""

    max_tokens: int = Field(ge=1, le=INT64)  # type: ignore[assignment]
    temperature: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=0, le=1_000_000)
    stop_sequences: list[str] | None = None
    stream: bool | None = False
    metadata: dict[str, Any] | None = None
