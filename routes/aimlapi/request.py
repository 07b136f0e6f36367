"""AI/ML API's chat request (its OpenAPI schema's fields and ranges) into the core's ``ChatRequest``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from routes.aimlapi.settings import AimlapiSettings
from routes.shared.openai_request import (
    MessageIn,
    NamedToolChoice,
    ToolDef,
    chat_to_core,
    check_logit_bias,
)
from server.errors import (
    InvalidRequestError,
    ModelNotFoundError,
)
from server.types import ChatRequest, SamplingOptions

INT64 = 2**63 - 1


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool


class ChatCompletionRequest(BaseModel):
    """The documented parameters and ranges of ``openai/gpt-oss-120b`` (unknown fields are stripped)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(max_length=256)
    messages: list[MessageIn] = Field(min_length=1, max_length=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64)
    max_tokens: int | None = Field(None, ge=1, le=INT64)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0.01, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=1, le=INT64)
    min_p: float | None = Field(None, ge=0.001, le=0.999, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    repetition_penalty: float | None = Field(None, gt=0.0, le=100.0, allow_inf_nan=False)
    top_a: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)  # accepted; no engine equivalent
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    logit_bias: dict[str, float] | None = Field(None, max_length=1024)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    prediction: dict[str, Any] | None = None  # accepted; speculative hints do not change the answer
    response_format: dict[str, Any] | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    echo: bool | None = None
    provider: str | None = Field(None, max_length=64)

    _bias = field_validator("logit_bias")(check_logit_bias)

    def to_core(self, request_id: str) -> ChatRequest:
        sampling = SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            repetition_penalty=self.repetition_penalty,
            logit_bias={int(k): v for k, v in self.logit_bias.items()} if self.logit_bias else None,
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


def check_model(settings: AimlapiSettings, model: str) -> str:
    if model != settings.model_id:
        if settings.unknown_model_status == 404:
            raise ModelNotFoundError(model)
        raise InvalidRequestError(
            f"Invalid enum value. Expected '{settings.model_id}', received '{model}'", param="model"
        )
    return model
