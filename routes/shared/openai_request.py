"""OpenAI-style chat requests (messages, content parts, tools, tool_choice, response_format) into core types.

Every OpenAI-like wire API parses these pieces the same way; its own request model composes them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.errors import InvalidRequestError
from server.types import ChatMessage, ChatRequest, FunctionTool, ResponseFormat, SamplingOptions, ToolCall, ToolChoice


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Loose):
    type: Literal["text"]
    text: str


class OtherPart(_Loose):
    type: str


ContentPart = Annotated[TextPart | OtherPart, Field(union_mode="left_to_right")]


class FunctionCallIn(_Loose):
    name: str = Field(max_length=256)
    arguments: str = ""


class ToolCallIn(_Loose):
    id: str = Field("", max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class MessageIn(_Loose):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = Field(None, max_length=256)
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(None, max_length=256)
    reasoning: str | None = None
    reasoning_content: str | None = None


class FunctionDef(_Loose):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(_Loose):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedToolChoice(_Loose):
    type: Literal["function"] = "function"
    function: dict[str, str]


def _text(content: str | list[Any] | None, index: int) -> str | None:
    if content is None or isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content:
        if isinstance(part, TextPart):
            texts.append(part.text)
        else:
            raise InvalidRequestError(
                f"Content part type '{part.type}' is not supported by this model (text only).",
                param=f"messages.{index}.content",
            )
    return "".join(texts)


def messages_to_core(messages: list[MessageIn]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for i, m in enumerate(messages):
        text = _text(m.content, i)
        if m.role in ("user", "system", "developer") and text is None:
            raise InvalidRequestError(f"messages.{i}.content is required for role '{m.role}'.", param=f"messages.{i}")
        if m.role == "assistant" and text is None and not m.tool_calls:
            raise InvalidRequestError(
                f"messages.{i}: an assistant message needs content or tool_calls.", param=f"messages.{i}"
            )
        calls = [ToolCall(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or []]
        out.append(
            ChatMessage(
                role=m.role,
                content=text,
                reasoning=m.reasoning if m.reasoning is not None else m.reasoning_content,
                tool_calls=calls,
                tool_call_id=m.tool_call_id,
                name=m.name,
            )
        )
    return out


def tools_to_core(tools: list[ToolDef] | None) -> list[FunctionTool]:
    return [FunctionTool(t.function.name, t.function.description, t.function.parameters) for t in tools or []]


def tool_choice_to_core(choice: str | NamedToolChoice | None, tools: list[FunctionTool]) -> ToolChoice:
    if choice is None:
        return ToolChoice("auto" if tools else "none")
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise InvalidRequestError(f"Invalid tool_choice '{choice}'.", param="tool_choice")
        if choice == "required" and not tools:
            raise InvalidRequestError("tool_choice 'required' needs tools.", param="tool_choice")
        return ToolChoice(choice)  # type: ignore[arg-type]
    name = choice.function.get("name", "")
    if name not in {t.name for t in tools}:
        raise InvalidRequestError(f"tool_choice names an unknown function '{name}'.", param="tool_choice")
    return ToolChoice("function", name)


def response_format_to_core(value: dict[str, Any] | None) -> ResponseFormat:
    if not value:
        return ResponseFormat()
    kind = value.get("type")
    if kind == "text":
        return ResponseFormat()
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise InvalidRequestError("response_format.json_schema must be an object.", param="response_format")
        return ResponseFormat("json_schema", spec.get("schema") or {}, spec.get("name"), bool(spec.get("strict")))
    raise InvalidRequestError(f"Unsupported response_format type '{kind}'.", param="response_format")


def stop_as_list(value: str | list[str] | None) -> list[str] | None:
    """OpenAI's ``stop``: one string or a list of them (for a request model's ``field_validator("stop")``)."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else value


def chat_to_core(
    *,
    messages: list[MessageIn],
    sampling: SamplingOptions,
    reasoning_effort: str | None,
    tools: list[ToolDef] | None,
    tool_choice: str | NamedToolChoice | None,
    response_format: dict[str, Any] | None,
    request_id: str,
) -> ChatRequest:
    """An OpenAI-style chat request's pieces into the core's ``ChatRequest``."""
    core_tools = tools_to_core(tools)
    return ChatRequest(
        messages=messages_to_core(messages),
        sampling=sampling,
        reasoning_effort=reasoning_effort,  # type: ignore[arg-type]
        tools=core_tools,
        tool_choice=tool_choice_to_core(tool_choice, core_tools),
        response_format=response_format_to_core(response_format),
        request_id=request_id,
    )


def check_logit_bias(value: dict[str, float] | None) -> dict[str, float] | None:
    """OpenAI's ``logit_bias``: token-id keys, values within ±100 (for a ``field_validator("logit_bias")``)."""
    for key, bias in (value or {}).items():
        if not key.isdigit() or int(key) >= 201088:
            raise ValueError(f"logit_bias key '{key}' is not a token id")
        if not -100.0 <= bias <= 100.0:
            raise ValueError("logit_bias values must be between -100 and 100")
    return value
