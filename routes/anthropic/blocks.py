"""Messages, system prompt, tools and tool choice: Anthropic's content blocks as the core's messages and tools.

- ``system`` (a string or text blocks) and ``system`` role messages inside ``messages`` (Claude Code sends its
  environment that way) become the prompt's instructions, in order.
- A user message's text blocks are one user message; each ``tool_result`` becomes a harmony tool message (not a user
  message: the renderer keeps the reasoning of a tool loop until the next real user message).
- An assistant message's ``thinking`` (and ``redacted_thinking``) blocks are its reasoning, read from their
  signature (``signatures.py``); its text blocks are its answer, or the commentary said before its ``tool_use``
  blocks; ``tool_use`` blocks are its calls.
- Images, documents and other non-text blocks are refused: gpt-oss reads text only. The conversation must end with a
  user message: assistant prefill (continuing a partial answer) cannot be done with harmony, and is refused as
  Anthropic refuses it for models without prefill.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from routes.anthropic.request import CountTokensRequest, MessagesRequest, ToolChoiceParam
from server.errors import InvalidRequestError
from server.types import (
    ChatMessage,
    ChatRequest,
    FunctionTool,
    ResponseFormat,
    SamplingOptions,
    ToolCall,
    ToolChoice,
)

Block = dict[str, Any]
OpenThinking = Callable[[str, str], str]  # (sealed signature, param) -> the thinking text

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Anthropic-defined tools (web_search_20250305, bash_20250124, text_editor_20250728, code_execution_..., mcp_toolset):
# they run on Anthropic's side or have Anthropic's own schema, and are not offered to the model here
_ANTHROPIC_TOOL = re.compile(r"^(?:[a-z][a-z0-9_]*_\d{8}|mcp_toolset)$")
_UNREADABLE = frozenset({"image", "document", "search_result", "container_upload"})
_ALLOWED = {
    "user": ("text", "tool_result"),
    "assistant": ("text", "thinking", "redacted_thinking", "tool_use"),
    "system": ("text",),
}


def _invalid(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(f"{param}: {message}", param=param)


def _str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _invalid("Input should be a valid string", param)
    return value


def _blocks(content: Any, param: str) -> list[Block]:
    """``content`` as a list of blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid("Input should be a valid string or a list of content blocks", param)
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise _invalid("Input should be a valid dictionary", f"{param}.{index}")
        if not isinstance(block.get("type"), str):
            raise _invalid("Field required: 'type' (a string)", f"{param}.{index}.type")
    return content


def _check_type(block: Block, allowed: tuple[str, ...], param: str) -> str:
    kind: str = block["type"]
    if kind in _UNREADABLE:
        raise _invalid(f"{kind} content blocks are not supported: this model reads text only", f"{param}.type")
    if kind not in allowed:
        expected = ", ".join(f"'{a}'" for a in allowed)
        message = f"Input tag '{kind[:64]}' found using 'type' does not match any of the expected tags: {expected}"
        raise _invalid(message, f"{param}.type")
    return kind


def _texts(blocks: list[Block], param: str) -> str:
    return "\n".join(_str(b.get("text"), f"{param}.{i}.text") for i, b in enumerate(blocks))


def system_text(system: str | list[Block] | None) -> str | None:
    """The ``system`` field's text (blocks joined by line breaks)."""
    if system is None or isinstance(system, str):
        return system or None
    blocks = _blocks(system, "system")
    for index, block in enumerate(blocks):
        _check_type(block, ("text",), f"system.{index}")
    return _texts(blocks, "system") or None


def _tool_result(block: Block, param: str) -> ChatMessage:
    call_id = _str(block.get("tool_use_id"), f"{param}.tool_use_id")
    content = block.get("content")
    parts: list[str] = []
    if isinstance(content, list):
        for index, part in enumerate(_blocks(content, f"{param}.content")):
            where = f"{param}.content.{index}"
            kind = _check_type(part, ("text", "tool_reference"), where)
            if kind == "text":
                parts.append(_str(part.get("text"), f"{where}.text"))
            else:  # tool search loaded a tool: every tool is offered here already
                parts.append(f"Tool loaded: {_str(part.get('tool_name'), f'{where}.tool_name')}")
    elif content is not None:
        parts.append(_str(content, f"{param}.content"))
    text = "\n".join(parts)
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise _invalid("Input should be a valid boolean", f"{param}.is_error")
    return ChatMessage(role="tool", content=f"Error: {text}" if is_error else text, tool_call_id=call_id)


def _user(blocks: list[Block], param: str) -> list[ChatMessage]:
    """Text blocks in a row are one user message; each tool result is a tool message."""
    out: list[ChatMessage] = []
    texts: list[str] = []
    for index, block in enumerate(blocks):
        where = f"{param}.{index}"
        if _check_type(block, _ALLOWED["user"], where) == "text":
            texts.append(_str(block.get("text"), f"{where}.text"))
            continue
        if texts:
            out.append(ChatMessage(role="user", content="\n".join(texts)))
            texts = []
        out.append(_tool_result(block, where))
    if texts:
        out.append(ChatMessage(role="user", content="\n".join(texts)))
    return out


def _assistant(blocks: list[Block], param: str, open_thinking: OpenThinking) -> ChatMessage:
    reasoning: list[str] = []
    texts: list[str] = []
    calls: list[ToolCall] = []
    for index, block in enumerate(blocks):
        where = f"{param}.{index}"
        kind = _check_type(block, _ALLOWED["assistant"], where)
        if kind == "text":
            texts.append(_str(block.get("text"), f"{where}.text"))
        elif kind == "thinking":
            shown = _str(block.get("thinking"), f"{where}.thinking")
            sealed = open_thinking(_str(block.get("signature"), f"{where}.signature"), where)
            if shown and shown != sealed:
                raise _invalid("Invalid `signature` in `thinking` block", where)
            reasoning.append(sealed)
        elif kind == "redacted_thinking":
            reasoning.append(open_thinking(_str(block.get("data"), f"{where}.data"), where))
        else:
            arguments = block.get("input")
            if not isinstance(arguments, dict):
                raise _invalid("Input should be a valid dictionary", f"{where}.input")
            text = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
            calls.append(ToolCall(_str(block.get("id"), f"{where}.id"), _str(block.get("name"), f"{where}.name"), text))
    return ChatMessage(
        role="assistant", content="\n".join(texts) or None, reasoning="".join(reasoning) or None, tool_calls=calls
    )


def to_messages(messages: list[Block], system: str | None, open_thinking: OpenThinking) -> list[ChatMessage]:
    """The conversation as the core's messages, under ``system``."""
    out = [ChatMessage(role="system", content=system)] if system else []
    last_role = None
    for index, message in enumerate(messages):
        param = f"messages.{index}"
        role = message.get("role")
        if not isinstance(role, str) or role not in _ALLOWED:
            raise _invalid("Input should be 'user' or 'assistant'", f"{param}.role")
        if "content" not in message:
            raise _invalid("Field required", f"{param}.content")
        blocks = _blocks(message["content"], f"{param}.content")
        if not blocks:
            raise _invalid("all messages must have non-empty content except for the optional final assistant "
                           "message", param)  # fmt: skip
        if role == "system":
            for i, block in enumerate(blocks):
                _check_type(block, _ALLOWED["system"], f"{param}.content.{i}")
            out.append(ChatMessage(role="system", content=_texts(blocks, f"{param}.content")))
            continue
        last_role = role
        if role == "user":
            out += _user(blocks, f"{param}.content")
        else:
            out.append(_assistant(blocks, f"{param}.content", open_thinking))
    if last_role != "user":
        raise InvalidRequestError(
            "This model does not support assistant message prefill. The conversation must end with a user message.",
            param="messages",
        )
    return out


def tools_to_core(tools: list[Block]) -> list[FunctionTool]:
    """Custom tools as function tools; Anthropic-defined tools are left out (nothing here runs them)."""
    out: list[FunctionTool] = []
    for index, tool in enumerate(tools):
        param = f"tools.{index}"
        if not isinstance(tool, dict):
            raise _invalid("Input should be a valid dictionary", param)
        kind = tool.get("type")
        if isinstance(kind, str) and _ANTHROPIC_TOOL.match(kind):
            continue
        if kind not in (None, "custom"):
            message = f"Input tag '{str(kind)[:64]}' found using 'type' does not match any of the expected tags"
            raise _invalid(message, f"{param}.type")
        name = tool.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise _invalid("String should match pattern '^[a-zA-Z0-9_-]{1,64}$'", f"{param}.name")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _invalid("Input should be a valid dictionary", f"{param}.input_schema")
        description = tool.get("description")
        if description is not None and not isinstance(description, str):
            raise _invalid("Input should be a valid string", f"{param}.description")
        if any(t.name == name for t in out):
            raise InvalidRequestError("tools: Tool names must be unique.", param="tools")
        out.append(FunctionTool(name, description, schema))
    return out


def tool_choice_to_core(choice: ToolChoiceParam | None, tools: list[FunctionTool]) -> ToolChoice:
    if choice is None or choice.type == "auto":
        return ToolChoice(mode="auto")
    if choice.type == "none":
        return ToolChoice(mode="none")
    if not tools:
        raise InvalidRequestError(
            f"tool_choice: '{choice.type}' needs at least one custom tool in 'tools'.", param="tool_choice"
        )
    if choice.type == "any":
        return ToolChoice(mode="required")
    if choice.name is None:
        raise _invalid("Field required", "tool_choice.name")
    if not any(t.name == choice.name for t in tools):
        raise InvalidRequestError(f"tool_choice: Tool '{choice.name}' not found in 'tools'.", param="tool_choice")
    return ToolChoice(mode="function", name=choice.name)


def to_core(body: CountTokensRequest, open_thinking: OpenThinking, request_id: str) -> ChatRequest:
    """The request as the core's ``ChatRequest``."""
    body.check()
    tools = tools_to_core(body.tools or [])
    choice = tool_choice_to_core(body.tool_choice, tools)
    messages = to_messages(body.messages, system_text(body.system), open_thinking)
    sampling = SamplingOptions(max_tokens=body.max_tokens)
    if isinstance(body, MessagesRequest):
        sampling.temperature, sampling.top_p = body.temperature, body.top_p
        sampling.top_k = body.top_k or None  # 0: no top-k cut
        sampling.stop = list(body.stop_sequences or [])
    fmt = body.output_config.format if body.output_config else None
    response_format = ResponseFormat("json_schema", fmt.schema_, "output", True) if fmt else ResponseFormat()
    return ChatRequest(
        messages=messages,
        sampling=sampling,
        reasoning_effort=body.effort(),
        tools=tools,
        tool_choice=choice,
        response_format=response_format,
        request_id=request_id,
    )
