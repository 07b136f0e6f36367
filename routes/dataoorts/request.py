"""The Workers AI run input (``{"model", "data": {...}}``) into the core's ``ChatRequest``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from routes.dataoorts.settings import DataoortsSettings
from routes.shared.openai_request import FunctionDef, MessageIn, ToolDef, messages_to_core
from server.errors import (
    InvalidRequestError,
)
from server.types import (
    ChatMessage,
    ChatRequest,
    FunctionTool,
    ResponseFormat,
    SamplingOptions,
    ToolChoice,
)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FlatTool(_Loose):
    """Cloudflare's short tool shape ``{name, description, parameters}``."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class JsonMode(_Loose):
    type: Literal["json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class Reasoning(_Loose):
    effort: Literal["low", "medium", "high"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class RunInput(_Loose):
    """Cloudflare's ``@cf/openai/gpt-oss-120b`` input: messages, prompt, or Responses-style ``input``."""

    messages: list[MessageIn] | None = Field(None, max_length=4096)
    prompt: str | None = Field(None, min_length=1)
    input: str | list[MessageIn] | None = None
    instructions: str | None = None
    reasoning: Reasoning | None = None
    functions: list[dict[str, Any]] | None = None
    tools: list[ToolDef | FlatTool] | None = Field(None, max_length=128)
    response_format: JsonMode | None = None
    raw: bool = False
    lora: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=2**31 - 1)
    temperature: float | None = Field(None, ge=0.0, le=5.0, allow_inf_nan=False)
    top_p: float | None = Field(None, ge=0.001, le=1.0, allow_inf_nan=False)
    top_k: int | None = Field(None, ge=1, le=50)
    seed: int | None = Field(None, ge=1, le=9_999_999_999)
    repetition_penalty: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)

    def _messages(self) -> list[ChatMessage]:
        if self.messages is not None:
            return messages_to_core(self.messages)
        if self.prompt is not None:
            return [ChatMessage(role="user", content=self.prompt)]
        if self.input is not None:
            system = [ChatMessage(role="system", content=self.instructions)] if self.instructions else []
            if isinstance(self.input, str):
                return [*system, ChatMessage(role="user", content=self.input)]
            return [*system, *messages_to_core(self.input)]
        raise InvalidRequestError("data must contain one of 'messages', 'prompt' or 'input'.", param="data.messages")

    def _tools(self) -> list[FunctionTool]:
        out: list[FunctionTool] = []
        for tool in self.tools or []:
            fn: FunctionDef | FlatTool = tool.function if isinstance(tool, ToolDef) else tool
            out.append(FunctionTool(fn.name, fn.description, fn.parameters))
        return out

    def _response_format(self) -> ResponseFormat:
        if self.response_format is None:
            return ResponseFormat()
        if self.response_format.type == "json_object":
            return ResponseFormat("json_object")
        spec = self.response_format.json_schema or {}
        # Cloudflare puts the schema itself in json_schema; accept OpenAI's {name, schema, strict} wrapper too.
        if isinstance(spec.get("schema"), dict):
            return ResponseFormat("json_schema", spec["schema"], spec.get("name"), bool(spec.get("strict")))
        return ResponseFormat("json_schema", spec)

    def to_core(self, request_id: str, settings: DataoortsSettings) -> ChatRequest:
        if self.raw:
            raise InvalidRequestError("raw mode is not supported for this model.", param="data.raw")
        if self.lora is not None:
            raise InvalidRequestError("LoRA adapters are not supported for this model.", param="data.lora")
        if self.functions:
            raise InvalidRequestError("Embedded functions are not supported for this model.", param="data.functions")
        tools = self._tools()
        temperature = self.temperature if self.temperature is not None else settings.default_temperature
        sampling = SamplingOptions(
            max_tokens=self.max_tokens,
            temperature=temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            # 0 is in Cloudflare's range but means nothing to the sampler (1.0 is neutral): treat it as unset.
            repetition_penalty=self.repetition_penalty or None,
        )
        return ChatRequest(
            messages=self._messages(),
            sampling=sampling,
            reasoning_effort=self.reasoning.effort if self.reasoning else None,
            tools=tools,
            tool_choice=ToolChoice("auto" if tools else "none"),
            response_format=self._response_format(),
            request_id=request_id,
        )


class RunRequest(_Loose):
    """Dataoorts' wrapper: one endpoint for every model, the model's input under ``data``."""

    model: str = Field(max_length=256)
    data: RunInput
