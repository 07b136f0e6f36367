"""Render a neutral chat request into gpt-oss prompt token ids with harmony.

Layout: a system message (model identity, knowledge cutoff, conversation date, reasoning effort),
a developer message holding the request's system/developer instructions (and function tools), then the
history. Earlier assistant turns keep only their final answer (harmony drops old analysis); the
reasoning of an assistant turn that ended in tool calls is kept, because the model continues it, and text alongside
tool calls is the commentary preamble said before them.
User text is encoded as plain text: a string spelling ``<|start|>`` never becomes a control token.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass

from openai_harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyError,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolDescription,
    ToolNamespaceConfig,
)
from openai_harmony import (
    RenderOptions as HarmonyRenderOptions,
)

from server.errors import InvalidRequestError
from server.harmony.decode import sanitize_tool_name
from server.harmony.encoding import get_encoding
from server.types import ChatMessage, ChatRequest, FunctionTool, ToolCall

_EFFORT = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}


@dataclass(frozen=True, slots=True)
class RenderOptions:
    model_identity: str = "You are ChatGPT, a large language model trained by OpenAI."
    knowledge_cutoff: str = "2024-06"
    # None: today's date (UTC) at render time; a fixed "YYYY-MM-DD" pins it (reproducible prompts).
    conversation_start_date: str | None = None
    default_reasoning_effort: str = "medium"


class HarmonyRenderer:
    def __init__(self, options: RenderOptions | None = None) -> None:
        self.options = options or RenderOptions()
        self._encoding = get_encoding()

    def _date(self) -> str:
        return self.options.conversation_start_date or dt.datetime.now(dt.UTC).date().isoformat()

    def build_conversation(self, request: ChatRequest) -> Conversation:
        return Conversation.from_messages(
            [self._system_message(self._effort(request), self._date()), *self._messages(request)]
        )

    def _effort(self, request: ChatRequest) -> str:
        return request.reasoning_effort or self.options.default_reasoning_effort

    def _system_message(self, effort: str, date: str) -> Message:
        opts = self.options
        system = (
            SystemContent.new()
            .with_model_identity(opts.model_identity)
            .with_knowledge_cutoff(opts.knowledge_cutoff)
            .with_conversation_start_date(date)
            .with_reasoning_effort(_EFFORT[effort])
        )
        return Message.from_role_and_content(Role.SYSTEM, system)

    @functools.lru_cache(maxsize=64)  # noqa: B019 (one renderer per server: the cache lives as long as it does)
    def _system_tokens(self, effort: str, date: str, function_tools: bool) -> tuple[int, ...]:
        """The system message's tokens: the same for every request with this effort, date and tool presence."""
        options = HarmonyRenderOptions(conversation_has_function_tools=function_tools)
        return tuple(self._encoding.render(self._system_message(effort, date), options))

    def _messages(self, request: ChatRequest) -> list[Message]:
        """The messages after the system message: developer instructions and tools, then the history."""
        messages: list[Message] = []
        instructions = [m.content for m in request.messages if m.role in ("system", "developer") and m.content]
        tools = _declared_tools(request)
        if instructions or tools:
            developer = DeveloperContent.new()
            if instructions:
                developer = developer.with_instructions("\n\n".join(instructions))
            for config in _namespaces(tools):
                developer = developer.with_tools(config)
            messages.append(Message.from_role_and_content(Role.DEVELOPER, developer))

        history = [m for m in request.messages if m.role not in ("system", "developer")]
        last_user = max((i for i, m in enumerate(history) if m.role == "user"), default=-1)
        tool_names = {c.id: _recipient(c) for m in history for c in m.tool_calls}
        for index, msg in enumerate(history):
            messages.extend(self._history_message(msg, keep_reasoning=index > last_user, tool_names=tool_names))
        return messages

    def _history_message(self, msg: ChatMessage, *, keep_reasoning: bool, tool_names: dict[str, str]) -> list[Message]:
        if msg.role == "user":
            return [Message.from_role_and_content(Role.USER, msg.content or "")]
        if msg.role == "assistant":
            out: list[Message] = []
            if keep_reasoning and msg.reasoning and msg.tool_calls:
                out.append(Message.from_role_and_content(Role.ASSISTANT, msg.reasoning).with_channel("analysis"))
            if msg.content and msg.tool_calls:
                # text alongside tool calls is what the model said before them (a call ends its turn): harmony's
                # commentary preamble. On the final channel it would read as an answer, and harmony would drop the
                # reasoning of the tool loop in progress.
                out.append(Message.from_role_and_content(Role.ASSISTANT, msg.content).with_channel("commentary"))
            for call in msg.tool_calls:
                out.append(
                    Message.from_role_and_content(Role.ASSISTANT, call.arguments or "{}")
                    .with_channel("commentary")
                    .with_recipient(_recipient(call))
                    .with_content_type("<|constrain|>json")
                )
            if msg.content and not msg.tool_calls:
                out.append(Message.from_role_and_content(Role.ASSISTANT, msg.content).with_channel("final"))
            return out
        if msg.role == "tool":
            recipient = tool_names.get(msg.tool_call_id or "") or (
                f"functions.{sanitize_tool_name(msg.name)}" if msg.name else None
            )
            if not recipient:
                raise InvalidRequestError(
                    "A tool message must answer a tool call of an earlier assistant message (tool_call_id not found).",
                    param="messages",
                )
            return [
                Message.from_author_and_content(Author.new(Role.TOOL, recipient), msg.content or "")
                .with_channel("commentary")
                .with_recipient("assistant")
            ]
        raise InvalidRequestError(f"Unsupported role: {msg.role}", param="messages")

    def render(self, request: ChatRequest) -> list[int]:
        """Prompt token ids, ending with ``<|start|>assistant`` (the model writes the rest).

        harmony renders a conversation message by message (its only conversation-wide inputs are whether the
        developer message declares ``functions`` tools and which analysis messages to drop, neither of which the
        system message affects), so the system message's tokens are cached and the rest rendered per request."""
        function_tools = any((t.namespace or "functions") == "functions" for t in _declared_tools(request))
        try:
            rest = self._encoding.render_conversation_for_completion(
                Conversation.from_messages(self._messages(request)), Role.ASSISTANT
            )
            return [*self._system_tokens(self._effort(request), self._date(), function_tools), *rest]
        except (ValueError, RecursionError, HarmonyError) as exc:
            raise InvalidRequestError(f"The conversation cannot be rendered: {exc}", param="messages") from exc
        except BaseException as exc:
            # harmony's Rust code reports a panic as pyo3's PanicException, a BaseException
            if exc.__class__.__name__ != "PanicException":
                raise
            raise InvalidRequestError("The conversation cannot be tokenized.", param="messages") from exc


def _declared_tools(request: ChatRequest) -> list[FunctionTool]:
    """The tools the developer message declares (none with ``tool_choice: none``)."""
    return request.tools if request.tool_choice.mode != "none" else []


def _recipient(call: ToolCall) -> str:
    return f"{call.namespace or 'functions'}.{sanitize_tool_name(call.name)}"


def _namespaces(tools: list[FunctionTool]) -> list[ToolNamespaceConfig]:
    """The request's tools as harmony namespaces: ``functions`` first, then each named group in order."""
    groups: dict[str, list[FunctionTool]] = {"functions": []}
    for tool in tools:
        groups.setdefault(tool.namespace or "functions", []).append(tool)
    return [
        ToolNamespaceConfig(
            name=name,
            description=members[0].namespace_description if name != "functions" else None,
            tools=[ToolDescription.new(t.name, t.description or "", parameters=t.parameters) for t in members],
        )
        for name, members in groups.items()
        if members
    ]


def canonical_arguments(text: str) -> str:
    """Compact JSON for tool arguments the model wrote, or the text unchanged if it is not JSON."""
    try:
        return json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return text
