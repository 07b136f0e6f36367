"""Ollama's chat and generate requests into the core's ``ChatRequest``.

Ollama decodes bodies with Go's ``encoding/json``: unknown fields are ignored, a missing or ``null`` field is its
zero value (no ``content`` is empty content, no ``messages`` a request that only loads the model), and a wrongly
typed one is a 400. Roles are read case-insensitively. Tool-call ``arguments`` are JSON objects (rendered to harmony
as compact JSON text), and a ``tool`` message names its tool in ``tool_name`` (or answers ``tool_call_id``); one
naming neither answers the assistant's calls in order, as harmony renders a result after its call.

``think``: gpt-oss cannot stop reasoning, so ``true``/``false`` are read as Ollama reads them for gpt-oss (ignored:
the default effort, and the reasoning still comes back in ``thinking``); ``"low"``/``"medium"``/``"high"`` set the
effort. ``format``: ``"json"`` or a JSON schema, through the core's grammar.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from routes.ollama.options import Options, parse_options
from routes.shared.openai_request import ToolDef, tools_to_core
from server.errors import InvalidRequestError
from server.types import (
    ChatMessage,
    ChatRequest,
    ReasoningEffort,
    ResponseFormat,
    SamplingOptions,
    ToolCall,
    ToolChoice,
)

EFFORTS = ("high", "medium", "low")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class GoStruct(BaseModel):
    """Strict types; unknown fields ignored; ``null`` reads as the field's default (Go's zero value)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class FunctionCallIn(GoStruct):
    name: str = Field(max_length=256)
    arguments: dict[str, Any] = Field(default_factory=dict)
    index: int | None = None


class ToolCallIn(GoStruct):
    id: str | None = Field(None, max_length=256)
    type: Literal["function"] | None = None  # not Ollama's: a converted OpenAI call may carry it
    function: FunctionCallIn


Role = Annotated[Literal["system", "developer", "user", "assistant", "tool"], BeforeValidator(_lower)]


class MessageIn(GoStruct):
    role: Role
    content: str = ""
    thinking: str = ""
    images: list[str] = Field(default_factory=list)
    tool_calls: list[ToolCallIn] = Field(default_factory=list)
    tool_name: str = Field("", max_length=256)
    tool_call_id: str = Field("", max_length=256)


class _Common(GoStruct):
    """The fields chat and generate share."""

    model: str = Field("", max_length=1024)
    stream: bool = True
    format: Any = None
    keep_alive: Any = None
    options: Any = None
    think: Any = None
    truncate: bool = True
    shift: bool = True
    logprobs: bool = False
    top_logprobs: int = 0

    def check(self) -> None:
        """Ollama's own checks of the shared fields, in its words."""
        if not 0 <= self.top_logprobs <= 20:
            raise InvalidRequestError("top_logprobs must be between 0 and 20", param="top_logprobs")
        keep_alive_seconds(self.keep_alive)

    def effort(self) -> ReasoningEffort | None:
        think = self.think
        if think is None or isinstance(think, bool):
            return None  # gpt-oss: true/false change nothing (as Ollama reads them for it)
        if isinstance(think, str):
            if think in EFFORTS:
                return think  # type: ignore[return-value]
            quoted = json.dumps(think, ensure_ascii=False)
            raise InvalidRequestError(
                f'invalid think value: {quoted} (must be "high", "medium", "low", true, or false)', param="think"
            )
        raise InvalidRequestError(
            'think must be a boolean or string ("high", "medium", "low", true, or false)', param="think"
        )

    def response_format(self) -> ResponseFormat:
        value = self.format
        if value is None or value == "":
            return ResponseFormat()
        if value == "json":
            return ResponseFormat("json_object")
        if isinstance(value, dict):
            return ResponseFormat("json_schema", value, "schema")
        quoted = json.dumps(json.dumps(value, ensure_ascii=False), ensure_ascii=False)
        raise InvalidRequestError(
            f'invalid format: {quoted}; expected "json" or a valid JSON Schema object', param="format"
        )

    def parsed_options(self, defaults: dict[str, Any]) -> Options:
        if self.options is not None and not isinstance(self.options, dict):
            raise InvalidRequestError(
                f"json: cannot unmarshal {go_kind(self.options)} into Go struct field .options of type "
                "map[string]interface {}",
                param="options",
            )
        return parse_options(self.options or {}, defaults)

    def core(self, messages: list[ChatMessage], options: Options, request_id: str, **extra: Any) -> ChatRequest:
        sampling = SamplingOptions(
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            top_k=options.top_k,
            min_p=options.min_p,
            seed=options.seed,
            stop=options.stop,
            presence_penalty=options.presence_penalty,
            frequency_penalty=options.frequency_penalty,
            repetition_penalty=options.repetition_penalty,
            logprobs=self.logprobs,
            top_logprobs=self.top_logprobs if self.logprobs else 0,
        )
        return ChatRequest(
            messages=messages,
            sampling=sampling,
            reasoning_effort=self.effort(),
            response_format=self.response_format(),
            request_id=request_id,
            **extra,
        )


class ChatIn(_Common):
    """``POST /api/chat``."""

    messages: list[MessageIn] = Field(default_factory=list)
    tools: list[ToolDef] = Field(default_factory=list)

    def to_core(self, options: Options, request_id: str) -> ChatRequest:
        tools = tools_to_core(self.tools)
        return self.core(
            messages_to_core(self.messages),
            options,
            request_id,
            tools=tools,
            tool_choice=ToolChoice("auto" if tools else "none"),
        )


class GenerateIn(_Common):
    """``POST /api/generate``."""

    prompt: str = ""
    suffix: str = ""
    system: str = ""
    template: str = ""
    context: list[int] = Field(default_factory=list, max_length=1_048_576)
    raw: bool = False
    images: list[str] = Field(default_factory=list)


def go_kind(value: Any) -> str:
    """The JSON kind of ``value`` as Go's decoder names it in a type error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def keep_alive_seconds(value: Any) -> float | None:
    """``keep_alive`` checked as Ollama's ``Duration`` reads it (seconds as a number, or a Go duration string)."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return None if value is None else float(value)
    if isinstance(value, str):
        seconds = _go_duration(value)
        if seconds is None:
            raise InvalidRequestError(f"time: invalid duration {json.dumps(value)}", param="keep_alive")
        return seconds
    kinds = {"bool": "bool", "array": "[]interface {}", "object": "map[string]interface {}"}
    raise InvalidRequestError(f"Unsupported type: '{kinds[go_kind(value)]}'", param="keep_alive")


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _go_duration(text: str) -> float | None:
    """Seconds in a Go duration string (``"5m"``, ``"1h30m"``, ``"-1s"``, ``"0"``), None if it is not one."""
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    total, rest = 0.0, body
    if not rest:
        return None
    while rest:
        digits = len(rest) - len(rest.lstrip("0123456789."))
        number, rest = rest[:digits], rest[digits:]
        unit = next((u for u in sorted(_UNITS, key=len, reverse=True) if rest.startswith(u)), None)
        if not number or number == "." or number.count(".") > 1 or unit is None:
            return None
        total += float(number) * _UNITS[unit]
        rest = rest[len(unit) :]
    return -total if text.startswith("-") else total


def _calls(message: MessageIn) -> list[ToolCall]:
    return [
        ToolCall(
            call.id or f"call_{call.function.name}_{i}",
            call.function.name,
            json.dumps(call.function.arguments, separators=(",", ":"), ensure_ascii=False),
        )
        for i, call in enumerate(message.tool_calls)
    ]


def messages_to_core(messages: list[MessageIn]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    pending: list[ToolCall] = []  # the last assistant message's calls not yet answered by name
    for i, m in enumerate(messages):
        if m.images:
            raise InvalidRequestError("this model does not support images", param=f"messages.{i}.images")
        calls = _calls(m) if m.role == "assistant" else []
        if m.role == "assistant":
            pending = list(calls)
        name, call_id = m.tool_name or None, m.tool_call_id or None
        if m.role == "tool":
            answered = next((c for c in pending if c.id == call_id or (name and c.name == name)), None)
            if answered is None and name is None and call_id is None and pending:
                answered = pending[0]  # neither named: the next call in order
                name = answered.name
            if answered is not None:
                pending.remove(answered)
        elif m.role != "assistant":
            pending = []
        out.append(
            ChatMessage(
                role=m.role,
                content=m.content,
                reasoning=(m.thinking or None) if m.role == "assistant" else None,
                tool_calls=calls,
                tool_call_id=call_id,
                name=name,
            )
        )
    return out
