"""Input items and tools: validated into the stored item shape, then into the core's messages and tools.

Items keep OpenAI's shape (with ids) because they are stored and listed back (``input_items``). For harmony, a run
of assistant items (reasoning, output messages, function calls) becomes one assistant message: the renderer keeps
its reasoning while the run ends in tool calls after the last user message (a tool loop in progress) and drops it
once a final answer followed, as gpt-oss was trained.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from server.errors import InvalidRequestError
from server.types import ChatMessage, FunctionTool, ToolCall, ToolChoice

Item = dict[str, Any]
# OpenAI's tool-name rule; namespaces follow it too (they become harmony recipients ``NAMESPACE.NAME``)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# tool types that run on OpenAI's side: this server has no backend for them, so they are not offered to the model
BUILT_IN_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "web_search_2025_08_26",
        "file_search",
        "code_interpreter",
        "image_generation",
        "computer_use_preview",
        "computer",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
        "custom",
    }
)
MAX_ID_CHARS = 256  # a client's item ids are echoed and listed back
MAX_DESCRIPTION_CHARS = 64 * 1024  # a namespace's description
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "refusal"})
_ROLES = frozenset({"user", "assistant", "system", "developer"})


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(f"Invalid type for '{param}': expected a string.", param=param)
    return value


def _opt_text(item: Item, key: str, param: str) -> str | None:
    value = item.get(key)
    return None if value is None else _text(value, f"{param}.{key}")


def _id(item: Item, param: str, new_id: Callable[[str], str], prefix: str) -> str:
    """The item's own id (a client's, bounded) or a new one."""
    value = _opt_text(item, "id", param)
    if value is not None and not 0 < len(value) <= MAX_ID_CHARS:
        raise InvalidRequestError(f"Invalid '{param}.id': at most {MAX_ID_CHARS} characters.", param=f"{param}.id")
    return value or new_id(prefix)


def _name(value: Any, param: str) -> str:
    """A tool or namespace name: OpenAI's pattern (it becomes part of a harmony recipient)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidRequestError(
            f"Invalid '{param}': '{str(value)[:80]}'. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param=param,
        )
    return value


def _parts_text(content: Any, param: str) -> str:
    """The text of a content list (or string); images and files are refused (gpt-oss reads text only)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(f"Invalid type for '{param}': expected a string or an array.", param=param)
    texts = []
    for index, part in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(part, dict):
            raise InvalidRequestError(f"Invalid type for '{where}': expected an object.", param=where)
        kind = part.get("type")
        if not isinstance(kind, str) or kind not in _TEXT_PARTS:
            raise InvalidRequestError(
                f"Invalid value for '{where}.type': '{kind}'. This model reads text only (input_text, output_text).",
                param=f"{where}.type",
            )
        texts.append(_text(part.get("refusal" if kind == "refusal" else "text"), f"{where}.text"))
    return "".join(texts)


def _message(item: Item, param: str, new_id: Callable[[str], str]) -> Item:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidRequestError(
            f"Invalid value for '{param}.role': '{role}'. Supported values are: 'assistant', 'system', 'developer', "
            "and 'user'.",
            param=f"{param}.role",
        )
    text = _parts_text(item.get("content"), f"{param}.content")
    if role == "assistant":
        part: Item = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        return {"id": _id(item, param, new_id, "msg"), "type": "message", "role": role,
                "status": "completed", "content": [part]}  # fmt: skip
    return {"id": _id(item, param, new_id, "msg"), "type": "message", "role": role,
            "status": "completed", "content": [{"type": "input_text", "text": text}]}  # fmt: skip


def _function_call(item: Item, param: str, new_id: Callable[[str], str]) -> Item:
    for key in ("call_id", "name", "arguments"):
        if item.get(key) is None:
            raise InvalidRequestError(f"Missing required parameter: '{param}.{key}'.", param=f"{param}.{key}")
    out: Item = {
        "id": _id(item, param, new_id, "fc"),
        "type": "function_call",
        "status": "completed",
        "arguments": _text(item["arguments"], f"{param}.arguments"),
        "call_id": _text(item["call_id"], f"{param}.call_id"),
        "name": _name(item["name"], f"{param}.name"),
    }
    if item.get("namespace") is not None:
        out["namespace"] = _name(item["namespace"], f"{param}.namespace")
    return out


def _function_output(item: Item, param: str, new_id: Callable[[str], str]) -> Item:
    if item.get("call_id") is None:
        raise InvalidRequestError(f"Missing required parameter: '{param}.call_id'.", param=f"{param}.call_id")
    if "output" not in item:
        raise InvalidRequestError(f"Missing required parameter: '{param}.output'.", param=f"{param}.output")
    return {
        "id": _id(item, param, new_id, "fco"),
        "type": "function_call_output",
        "status": "completed",
        "call_id": _text(item["call_id"], f"{param}.call_id"),
        "output": _parts_text(item["output"], f"{param}.output"),
    }


def _reasoning(item: Item, param: str, new_id: Callable[[str], str]) -> Item:
    content = item.get("content") or []
    if not isinstance(content, list):
        raise InvalidRequestError(f"Invalid type for '{param}.content': expected an array.", param=f"{param}.content")
    texts = []
    for index, part in enumerate(content):
        where = f"{param}.content[{index}]"
        if not isinstance(part, dict) or part.get("type") != "reasoning_text":
            raise InvalidRequestError(f"Invalid value for '{where}': expected a reasoning_text part.", param=where)
        texts.append(_text(part.get("text"), f"{where}.text"))
    summary = item.get("summary") or []
    if not isinstance(summary, list) or not all(
        isinstance(s, dict) and isinstance(s.get("text"), str) for s in summary
    ):
        raise InvalidRequestError(f"Invalid value for '{param}.summary'.", param=f"{param}.summary")
    out: Item = {
        "id": _id(item, param, new_id, "rs"),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": s["text"]} for s in summary],
        "content": [{"type": "reasoning_text", "text": t} for t in texts],
    }
    sealed = _opt_text(item, "encrypted_content", param)
    if sealed is not None:
        out["encrypted_content"] = sealed
    return out


_PARSERS = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_output,
    "reasoning": _reasoning,
}


def parse_input(
    raw: str | list[Item], new_id: Callable[[str], str], known: dict[str, Item] | None = None
) -> list[Item]:
    """The request's ``input`` as stored items (ids assigned). ``item_reference`` resolves against ``known`` (the
    items of the ``previous_response_id`` chain)."""
    if isinstance(raw, str):
        return [_message({"role": "user", "content": raw}, "input", new_id)]
    items: list[Item] = []
    for index, item in enumerate(raw):
        param = f"input[{index}]"
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind is not None and not isinstance(kind, str):
            raise InvalidRequestError(f"Invalid type for '{param}.type': expected a string.", param=f"{param}.type")
        if kind == "item_reference":
            ref = item.get("id")
            if not isinstance(ref, str) or ref not in (known or {}):
                raise InvalidRequestError(f"Item with id '{ref}' not found.", param=f"{param}.id")
            items.append((known or {})[ref])
            continue
        parser = _PARSERS.get(kind or "")
        if parser is None:
            raise InvalidRequestError(
                f"Invalid value for '{param}.type': '{kind}'. Supported values are: 'message', 'function_call', "
                "'function_call_output', 'reasoning' and 'item_reference'.",
                param=f"{param}.type",
            )
        items.append(parser(item, param, new_id))
    seen: set[str] = set()
    for index, parsed in enumerate(items):
        if parsed["id"] in seen or (parsed["id"] in (known or {}) and raw[index].get("type") != "item_reference"):
            raise InvalidRequestError(f"Duplicate item id: '{parsed['id']}'.", param=f"input[{index}].id")
        seen.add(parsed["id"])
    return items


def to_messages(items: list[Item], reasoning_of: Callable[[Item, str], str], first_input: int = 0) -> list[ChatMessage]:
    """Items as the core's chat messages. ``reasoning_of(item, param)`` gives a reasoning item's text (opening its
    ``encrypted_content`` when it has one)."""
    messages: list[ChatMessage] = []
    run: ChatMessage | None = None  # the assistant run being collected

    def assistant() -> ChatMessage:
        nonlocal run
        if run is None:
            run = ChatMessage(role="assistant")
            messages.append(run)
        return run

    for index, item in enumerate(items):
        kind = item["type"]
        if kind == "reasoning":
            msg = assistant()
            msg.reasoning = (msg.reasoning or "") + reasoning_of(item, f"input[{index - first_input}]")
        elif kind == "function_call":
            call = ToolCall(item["call_id"], item["name"], item["arguments"], item.get("namespace"))
            assistant().tool_calls.append(call)
        elif kind == "message" and item["role"] == "assistant":
            msg = assistant()
            msg.content = (msg.content or "") + item["content"][0]["text"]
        else:
            run = None
            if kind == "function_call_output":
                messages.append(ChatMessage(role="tool", content=item["output"], tool_call_id=item["call_id"]))
            else:
                role = "developer" if item["role"] == "system" else item["role"]
                messages.append(ChatMessage(role=role, content=item["content"][0]["text"]))
    return messages


def _function(tool: Item, param: str, namespace: str | None = None, about: str | None = None) -> FunctionTool:
    name = _name(tool.get("name"), f"{param}.name")
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequestError(f"Invalid type for '{param}.parameters': expected an object.", param=param)
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequestError(f"Invalid type for '{param}.description': expected a string.", param=param)
    return FunctionTool(name, description, parameters, namespace, about)


def tools_to_core(tools: list[Item]) -> list[FunctionTool]:
    """Function tools and namespaces of functions; built-in tools are left out (nothing here could run them)."""
    out: list[FunctionTool] = []
    for index, tool in enumerate(tools):
        param = f"tools[{index}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise InvalidRequestError(f"Invalid '{param}': expected an object with a string 'type'.", param=param)
        kind = tool["type"]
        if kind == "function":
            out.append(_function(tool, param))
        elif kind == "namespace":
            name = _name(tool.get("name"), f"{param}.name")
            if name == "functions":
                raise InvalidRequestError(f"Invalid '{param}.name': 'functions' is reserved.", param=f"{param}.name")
            members = tool.get("tools")
            if not isinstance(members, list):
                raise InvalidRequestError(f"Missing required parameter: '{param}.tools'.", param=f"{param}.tools")
            about = tool.get("description")
            if about is not None and (not isinstance(about, str) or len(about) > MAX_DESCRIPTION_CHARS):
                raise InvalidRequestError(
                    f"Invalid '{param}.description': a string of at most {MAX_DESCRIPTION_CHARS} characters.",
                    param=f"{param}.description",
                )
            for j, member in enumerate(members):
                if isinstance(member, dict) and member.get("type") == "function":
                    out.append(_function(member, f"{param}.tools[{j}]", name, about))
        elif kind not in BUILT_IN_TOOLS:
            raise InvalidRequestError(f"Invalid value for '{param}.type': '{kind}'.", param=f"{param}.type")
    seen: set[str] = set()
    for tool in out:
        if tool.recipient in seen:
            raise InvalidRequestError(f"Duplicate tool name: '{tool.recipient}'.", param="tools")
        seen.add(tool.recipient)
    return out


def _function_echo(tool: Item) -> Item:
    strict = tool.get("strict")
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": True if strict is None else bool(strict),  # OpenAI's default for function tools
    }


def echo_tools(tools: list[Item]) -> list[Item]:
    """``tools`` as the response object shows them (validated first by ``tools_to_core``): functions with every
    field OpenAI echoes, namespaces with their functions the same way, other tools as they came."""
    out = []
    for tool in tools:
        if tool.get("type") == "function":
            out.append(_function_echo(tool))
        elif tool.get("type") == "namespace":
            members = [_function_echo(m) for m in tool["tools"] if isinstance(m, dict) and m.get("type") == "function"]
            about = tool.get("description")
            out.append({"type": "namespace", "name": tool["name"], "description": about or "", "tools": members})
        else:
            out.append(tool)
    return out


def tool_choice_to_core(choice: str | Item | None, tools: list[FunctionTool]) -> tuple[ToolChoice, list[FunctionTool]]:
    """The core's choice, and the tools it leaves on offer (``allowed_tools`` narrows them). ``required`` needs a
    function to call: with none on offer nothing could force the call, so it is refused."""
    if choice is None or isinstance(choice, str):
        return _offered(ToolChoice(mode=choice or "auto"), tools)  # type: ignore[arg-type]
    kind = choice.get("type")
    if not isinstance(kind, str):
        raise InvalidRequestError("Invalid 'tool_choice': expected a string 'type'.", param="tool_choice")
    if kind == "function":
        name = choice.get("name")
        if not any(t.name == name and t.namespace is None for t in tools):
            raise InvalidRequestError(f"Tool choice '{name}' not found in 'tools' parameter.", param="tool_choice")
        return ToolChoice(mode="function", name=name), tools
    if kind == "allowed_tools":
        mode = choice.get("mode", "auto")
        allowed = choice.get("tools")
        if mode not in ("auto", "required") or not isinstance(allowed, list):
            raise InvalidRequestError("Invalid 'tool_choice' of type 'allowed_tools'.", param="tool_choice")
        names = {(str(a.get("namespace") or ""), str(a.get("name"))) for a in allowed if isinstance(a, dict)}
        kept = [t for t in tools if (t.namespace or "", t.name) in names]
        return _offered(ToolChoice(mode=mode), kept)
    raise InvalidRequestError(
        f"Tool choice of type '{kind}' is not available: this server runs no built-in tools.", param="tool_choice"
    )


def _offered(choice: ToolChoice, tools: list[FunctionTool]) -> tuple[ToolChoice, list[FunctionTool]]:
    if choice.mode == "required" and not tools:
        raise InvalidRequestError(
            "Tool choice 'required' needs at least one function tool in 'tools'.", param="tool_choice"
        )
    return choice, tools
