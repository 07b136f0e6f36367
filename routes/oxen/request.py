"""Oxen's chat request (its OpenAPI schema) into the core's ``ChatRequest``."""

from __future__ import annotations

import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from routes.shared.openai_request import (
    MessageIn,
    NamedToolChoice,
    ToolDef,
    chat_to_core,
    stop_as_list,
)
from server.errors import (
    InvalidRequestError,
)
from server.types import ChatRequest, SamplingOptions


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """What we accept on ``POST /api/ai/chat/completions`` (Oxen's ``ChatCompletionRequest`` plus the
    OpenAI fields its SDK clients send). Unknown fields are ignored. Its JSON Schema is the model's
    ``request_schema``."""

    model_config = ConfigDict(extra="ignore", title="gpt-oss-120b chat completion request")

    model: str = Field(min_length=1, max_length=256, description="Model ID to use")
    messages: list[MessageIn] = Field(min_length=1, max_length=4096, description="The conversation so far")
    stream: bool = Field(False, description="Stream the answer as server-sent events")
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1, description="Maximum tokens to generate")
    max_completion_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    n: int = Field(1, ge=1, le=1)
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    target_namespace: str | None = Field(None, max_length=256, description="Namespace to bill")
    user: str | None = None

    _stop_list = field_validator("stop")(stop_as_list)

    def to_core(self, request_id: str) -> ChatRequest:
        sampling = SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=list(self.stop or []),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
        )
        return chat_to_core(
            messages=self.messages,
            sampling=sampling,
            reasoning_effort=self.reasoning_effort,
            tools=self.tools,
            tool_choice=self.tool_choice,
            response_format=self.response_format,
            request_id=request_id,
        )


@functools.cache
def request_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the request we accept, derived from the request model."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **ChatCompletionRequest.model_json_schema()}


def precheck(raw: dict[str, Any]) -> None:
    """Oxen's own messages for the two fields every chat call needs (before generic validation)."""
    if raw.get("model") in (None, ""):
        raise InvalidRequestError("You must specify a model to call", param="model")
    if raw.get("messages") in (None, []):
        raise InvalidRequestError("Messages array cannot be empty", param="messages")
