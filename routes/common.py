"""Parts every provider route shares: OpenAI-style message parsing into core types, running a chat
request (streaming or not) with disconnect handling, and small helpers for ids and tokens."""

from __future__ import annotations

import asyncio
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.context import ServerContext
from server.errors import ClientDisconnectedError, InvalidRequestError
from server.harmony.encoding import get_encoding
from server.http.routing import validation_error
from server.service import PreparedRequest
from server.types import (
    ChatMessage,
    ChatResult,
    Event,
    FunctionTool,
    ResponseFormat,
    TokenLogprob,
    ToolCall,
    ToolChoice,
)

ALNUM = string.ascii_letters + string.digits
T = TypeVar("T", bound=BaseModel)


def random_alnum(n: int) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def parse_body(model: type[T], body: dict[str, Any]) -> T:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


# ---- OpenAI-style chat messages (shared by every OpenAI-like provider) ------------------------------


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


# ---- running a request ------------------------------------------------------------------------------


def context(request: Request) -> ServerContext:
    """The running server's shared state (a FastAPI dependency)."""
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[ServerContext, Depends(context)]


async def start(ctx: ServerContext, prepared: PreparedRequest) -> None:
    """Checks that must pass before the first byte (engine up, capacity); takes the admission slot."""
    await ctx.service.admit(prepared)


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run ``work``; cancel it (aborting the engine request) if the client goes away first."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()  # aborts the engine request
            raise ClientDisconnectedError("The client closed the connection before the answer was ready.")
        return task.result()
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


async def complete(ctx: ServerContext, request: Request, prepared: PreparedRequest) -> ChatResult:
    await start(ctx, prepared)
    return await until_disconnect(request, ctx.service.complete(prepared))


async def open_stream(ctx: ServerContext, prepared: PreparedRequest) -> AsyncIterator[Event]:
    await start(ctx, prepared)
    return ctx.service.stream(prepared)


EncodeStream = Callable[[AsyncIterator[Event]], AsyncIterator[bytes]]


# ---- tokens -----------------------------------------------------------------------------------------


def token_text(token_id: int) -> str:
    return get_encoding().decode([token_id])


def openai_logprobs(entries: list[TokenLogprob] | None) -> dict[str, Any] | None:
    """``{"content": [...]}`` in OpenAI's chat logprobs shape."""
    if entries is None:
        return None
    content = []
    for entry in entries:
        text = token_text(entry.token_id)
        content.append(
            {
                "token": text,
                "logprob": max(entry.logprob, -9999.0),
                "bytes": list(text.encode()),
                "top_logprobs": [
                    {"token": (t := token_text(tid)), "logprob": max(lp, -9999.0), "bytes": list(t.encode())}
                    for tid, lp in entry.top
                ],
            }
        )
    return {"content": content}
