"""vLLM's chat request (OpenAI's fields plus vLLM's extras) into the core's ``ChatRequest``.

The E2E route (vLLM behind a gateway) uses the same model. vLLM's own checks (``routes/openai/checks.py``) run on the
raw body first, with vLLM's messages; a message's role may be any string, as in vLLM, and one harmony cannot render
is refused as vLLM's harmony path refuses it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from routes.openai.checks import check_body, check_role
from routes.shared.completion_request import check_prompt_logprobs
from routes.shared.openai_request import (
    MessageIn,
    NamedToolChoice,
    ToolDef,
    chat_to_core,
    check_logit_bias,
    stop_as_list,
)
from server.types import ChatRequest, SamplingOptions

INT64 = 2**63 - 1


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False
    continuous_usage_stats: bool = False


class VllmMessageIn(MessageIn):
    """vLLM's message: any role (its custom message type), checked against harmony's roles in ``to_core``."""

    role: str = Field(max_length=256)  # type: ignore[assignment]


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request with vLLM's extras (top_k, min_p, repetition_penalty, ...).

    Unknown fields are ignored, as vLLM and OpenAI do.
    """

    model_config = ConfigDict(extra="ignore")

    messages: list[VllmMessageIn] = Field(min_length=1, max_length=4096)
    model: str | None = Field(None, max_length=256)
    max_tokens: int | None = Field(None, ge=1, le=INT64)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT64)
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=-1, le=1_000_000)
    min_p: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    n: int | None = Field(1, ge=1, le=128)  # null (OpenAI's spec and vLLM allow it): the default
    seed: int | None = Field(None, ge=-(2**63), le=INT64)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    repetition_penalty: float | None = Field(None, gt=0.0, le=10.0, allow_inf_nan=False)
    logit_bias: dict[str, float] | None = Field(None, max_length=1024)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    ignore_eos: bool = False
    min_tokens: int = Field(0, ge=0, le=INT64)
    return_token_ids: bool = False
    prompt_logprobs: int | None = None

    _stop_list = field_validator("stop")(stop_as_list)

    _bias = field_validator("logit_bias")(check_logit_bias)

    @model_validator(mode="before")
    @classmethod
    def _vllm_checks(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_body(data)
        return data

    @property
    def choices(self) -> int:
        """``n``: the choices to generate (null is the default, 1)."""
        return self.n or 1

    def to_core(self, request_id: str) -> ChatRequest:
        for message in self.messages:
            check_role(message.role)
        check_prompt_logprobs(self.prompt_logprobs, bool(self.stream))
        sampling = SamplingOptions(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            min_p=self.min_p,
            seed=self.seed,
            stop=list(self.stop or []),
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            repetition_penalty=self.repetition_penalty,
            logit_bias={int(k): v for k, v in self.logit_bias.items()} if self.logit_bias else None,
            logprobs=bool(self.logprobs),
            top_logprobs=self.top_logprobs or 0,
            ignore_eos=self.ignore_eos,
            min_tokens=self.min_tokens,
            prompt_logprobs=self.prompt_logprobs,
        )
        return chat_to_core(
            messages=self.messages,  # type: ignore[arg-type]
            sampling=sampling,
            reasoning_effort=self.reasoning_effort,
            tools=self.tools,
            tool_choice=self.tool_choice,
            response_format=self.response_format,
            request_id=request_id,
        )
